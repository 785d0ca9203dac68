"""The tallies the admin and /metrics read instead of counting every row on each view.

`enrollment_tallies`, `delivery_tallies` and `daily_tallies` (drip.store.models) are kept by
triggers on `enrollments` and `deliveries` (migrations 0003 and 0023), so every writer keeps
them right in its own transaction without knowing they exist: the dispatcher, the intake,
the operator's buttons, an erasure. `rebuild` recounts them from the rows: the migration uses it
to fill them, and a bulk load that switched the triggers off (bench/admin.py) to catch up.
"""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from sqlalchemy import Date, Integer, Table, case, delete, func, insert, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import Connection

from drip.store.models import DailyTally, Delivery, DeliveryTally, Enrollment, EnrollmentTally

E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)


def _utc_day(connection: Connection, column: Any) -> Any:
    if connection.dialect.name == "postgresql":
        return sql_cast(func.timezone("UTC", column), Date)
    return func.date(column)


def rebuild(connection: Connection) -> None:
    """Recount every tally from the enrollments and deliveries, in the caller's transaction."""
    for model in (EnrollmentTally, DeliveryTally, DailyTally):
        connection.execute(delete(model))
    confirmed = func.sum(case((E.c.confirmed_at.is_not(None), 1), else_=0))
    connection.execute(
        insert(EnrollmentTally).from_select(
            ["sequence", "status", "enrollments", "confirmed"],
            select(E.c.sequence, E.c.status, func.count(), sql_cast(confirmed, Integer)).group_by(
                E.c.sequence, E.c.status
            ),
        )
    )
    connection.execute(
        insert(DeliveryTally).from_select(
            ["sequence", "lesson", "status", "deliveries"],
            select(E.c.sequence, D.c.lesson, D.c.status, func.count())
            .join(E, E.c.id == D.c.enrollment_id)
            .group_by(E.c.sequence, D.c.lesson, D.c.status),
        )
    )
    days: dict[date, list[int]] = {}
    for status, column, slot in (("sent", D.c.sent_at, 0), ("failed", D.c.updated_at, 1)):
        day = _utc_day(connection, column)
        for found, count in connection.execute(
            select(day, func.count()).where(D.c.status == status).group_by(day)
        ):
            days.setdefault(date.fromisoformat(str(found)), [0, 0])[slot] = int(count)
    if days:
        connection.execute(
            insert(DailyTally),
            [{"day": day, "sent": sent, "failed": failed} for day, (sent, failed) in days.items()],
        )
