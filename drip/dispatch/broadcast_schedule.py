"""A broadcast's recipients written by the database: one INSERT ... SELECT, in constant memory.

Each reader's copy is due at the first opening of their send window at or after the
broadcast's time, in their time zone. That time depends only on the course and the time
zone, and an audience of 100,000 readers has a few hundred such pairs at most: drip works
out the due time of each pair (drip.content.schedule, the one due function), puts them in a
temporary table, and the database joins the audience to it as it writes the rows. No reader
passes through Python, so scheduling costs what the INSERT costs (bench/broadcast_schedule.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.orm import Session

from drip.content.schedule import into_window, reader_zone
from drip.content.sequences import Library
from drip.store.models import BroadcastRecipient, RecipientStatus

RECIPIENTS = cast(Table, BroadcastRecipient.__table__)

ANALYZE_AFTER = 10_000  # copies written at once: the planner is told of them


def _due_table() -> Table:
    """The due time of each (course, time zone) of the audience, for one statement's join."""
    return Table(
        "drip_broadcast_due",
        MetaData(),
        Column("sequence", String(100), primary_key=True),
        Column("timezone", String(64), primary_key=True),
        Column("due_at", RECIPIENTS.c.due_at.type, nullable=False),
        prefixes=["TEMPORARY"],
    )


def write_recipients(
    session: Session, library: Library, broadcast_id: int, audience: Select[Any], at: datetime
) -> int:
    """Write one queued recipient row per row of `audience` (columns subscriber_id,
    enrollment_id, sequence, timezone), due at `at` in that reader's window, in the
    session's transaction. Returns how many."""
    rows = audience.order_by(None).subquery("audience")  # written in any order
    pairs = session.execute(select(rows.c.sequence, rows.c.timezone).distinct()).all()
    if not pairs:
        return 0
    due = _due_table()
    connection = session.connection()
    dues = []
    for slug, zone in pairs:
        sequence = library.sequences[slug]
        when = into_window(at, sequence.window, reader_zone(zone, sequence.timezone))
        dues.append({"sequence": slug, "timezone": zone, "due_at": when})
    # Created and dropped in the caller's transaction: a failure rolls both back with it.
    due.create(connection)
    connection.execute(insert(due), dues)
    chosen = select(
        literal(broadcast_id, Integer()),
        rows.c.subscriber_id,
        rows.c.enrollment_id,
        literal(str(RecipientStatus.QUEUED), String()),
        due.c.due_at,
        literal(0, Integer()),
    ).join_from(
        rows, due, (due.c.sequence == rows.c.sequence) & (due.c.timezone == rows.c.timezone)
    )
    columns = ["broadcast_id", "subscriber_id", "enrollment_id", "status", "due_at", "attempts"]
    rows_in = insert(RECIPIENTS).from_select(columns, chosen)
    postgres = connection.dialect.name == "postgresql"
    if postgres:  # psycopg gives no rowcount for this one
        counted = select(func.count()).select_from(rows_in.returning(RECIPIENTS.c.id).cte())
        written = connection.execute(counted).scalar_one()
    else:
        written = connection.execute(rows_in).rowcount
    due.drop(connection)
    if postgres and written >= ANALYZE_AFTER:
        # The claims that follow read the copies in index order only once the planner knows
        # they are there: until autovacuum's next look it would read and sort all of them
        # for each batch of 200 (drip.store.queries.first_due). It sees this transaction's.
        connection.execute(text("ANALYZE broadcast_recipients"))
    return int(written)
