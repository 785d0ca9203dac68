"""What a worker writes about its hand-offs, and the rules every write keeps.

- Every change is conditional on the worker's lease (`lease_owner`): a worker whose lease
  ran out changes nothing of a reader another worker holds now.
- Tally rows are locked in one order by every batch (`lock_tallies`): no deadlock.
- A delivery whose outcome was once unknown keeps the note (`keep_unknown`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    Integer,
    Select,
    Table,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from drip.dispatch.plan import Send, Settle, Verdict
from drip.store.models import (
    OUTCOME_UNKNOWN,
    Delivery,
    DeliveryStatus,
    DeliveryTally,
    Enrollment,
    EnrollmentStatus,
    EnrollmentTally,
    Event,
    EventKind,
    Subscriber,
)

E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
DELIVERY_TALLIES = cast(Table, DeliveryTally.__table__)
ENROLLMENT_TALLIES = cast(Table, EnrollmentTally.__table__)
EVENTS = cast(Table, Event.__table__)
LEASE_LOST = "its lease ran out and another worker holds the reader now"


def leased(worker: Any) -> ColumnElement[bool]:
    """The enrollment is this worker's (`worker`: its id, or a bound parameter)."""
    return cast(ColumnElement[bool], E.c.lease_owner == worker)


def delivery_leased(worker: Any) -> ColumnElement[bool]:
    """The delivery belongs to an enrollment this worker holds."""
    return exists().where(E.c.id == D.c.enrollment_id, leased(worker))


def keep_unknown(error: Any) -> ColumnElement[Any]:
    """`last_error` becomes `error`, unless it records an earlier unknown outcome: that
    note stays for good (the enrollment's last_error shows the latest failure)."""
    return case((D.c.last_error.startswith(OUTCOME_UNKNOWN), D.c.last_error), else_=error)


# What a pass runs for every message, built once with bound parameters: SQLAlchemy finds each
# compiled in its cache, where a statement built per reader costs more than the SQL itself.
STILL_WANTED = (
    select(E.c.status, S.c.suppressed_at, E.c.lease_owner)
    .join(S, S.c.id == E.c.subscriber_id)
    .where(E.c.id == bindparam("p_check", type_=Integer()))
)
MARK_SENT = (
    update(D)
    .where(D.c.id == bindparam("p_delivery"), delivery_leased(bindparam("p_me")))
    .values(
        status=DeliveryStatus.SENT,
        sent_at=bindparam("p_at", type_=D.c.sent_at.type),
        updated_at=bindparam("p_at", type_=D.c.sent_at.type),
        last_error=keep_unknown(None),
        lesson_version=bindparam("p_version"),
        attempts=D.c.attempts + 1,
    )
)
ADVANCE = (
    update(E)
    .where(
        E.c.id == bindparam("p_enrollment"),
        E.c.status == EnrollmentStatus.ACTIVE,
        leased(bindparam("p_me")),
    )
    .values(
        next_lesson=bindparam("p_after", type_=E.c.next_lesson.type),
        due_at=bindparam("p_after_due", type_=E.c.due_at.type),
        last_sent_at=bindparam("p_at", type_=E.c.last_sent_at.type),
        attempts=0,
        last_error=None,
        hold_reason=None,
        lease_owner=None,
        status=bindparam("p_status", type_=E.c.status.type),
        completed_at=bindparam("p_done_at", type_=E.c.completed_at.type),
    )
)
# A confirmation handed over: the enrollment waits for the reader's click.
CONFIRMATION_SENT = (
    update(E)
    .where(E.c.id == bindparam("p_enrollment"), leased(bindparam("p_me")))
    .values(
        confirmation_sent_at=bindparam("p_at", type_=E.c.confirmation_sent_at.type),
        pending_message_id=None,
        due_at=None,
        lease_owner=None,
        attempts=0,
        last_error=None,
        hold_reason=None,
    )
)


def recorded_and_read(marked: CTE, read: Select[Any] | None, *more: CTE) -> Select[Any]:
    """On PostgreSQL a record and the next reader's status read go in one statement, atomic
    on its own: one round trip, no BEGIN. Its row: how many rows `marked` (a CTE returning
    them) changed, 0 when the lease was lost; then the columns of `read`, NULLs when it
    finds nothing (none with no `read`). `more`: further writes of the same record."""
    count = select(func.count()).select_from(marked).scalar_subquery()
    if read is None:
        return select(count).add_cte(marked, *more)
    following = read.subquery("next_reader")
    return (
        select(count, *following.c)
        .select_from(select(literal(1).label("one")).subquery("one").outerjoin(following, true()))
        .add_cte(marked, *more)
    )


RECORD_SENT_AND_CHECK = recorded_and_read(
    MARK_SENT.returning(D.c.id).cte("sent_delivery"),
    STILL_WANTED,
    ADVANCE.cte("advanced_enrollment"),
)
_CONFIRMED = CONFIRMATION_SENT.returning(E.c.id, E.c.subscriber_id).cte("confirmed")
# With its event on the reader's timeline, written only if the lease held.
RECORD_CONFIRMED_AND_CHECK = recorded_and_read(
    _CONFIRMED,
    STILL_WANTED,
    insert(EVENTS)
    .from_select(
        ["subscriber_id", "enrollment_id", "kind", "at", "detail"],
        select(
            _CONFIRMED.c.subscriber_id,
            _CONFIRMED.c.id,
            literal(EventKind.CONFIRMATION_SENT.value),
            bindparam("p_at", type_=EVENTS.c.at.type),
            bindparam("p_detail", type_=EVENTS.c.detail.type),
        ),
    )
    .returning(EVENTS.c.id)
    .cte("confirmation_event"),
)


def lock_tallies(conn: Connection, settles: Iterable[Settle], sends: Iterable[Send]) -> None:
    """Lock, on PostgreSQL, every tally row the batch's writes will change, in key order:
    delivery tallies, then enrollment tallies, the order in which recording a hand-off
    changes them. The triggers would otherwise lock them in the order of the batch's rows,
    and two batches mixing lessons would each hold a row the other waits for (a deadlock).
    An upsert that changes nothing locks a row, and creates one that does not exist yet."""
    if conn.dialect.name != "postgresql":
        return  # SQLite: one writer at a time
    deliveries: set[tuple[str, str, str]] = set()
    for send in sends:
        if send.lesson is not None:
            deliveries.add((send.claimed.sequence, send.lesson_key, DeliveryStatus.SENDING))
            if send.lesson_key in send.claimed.earlier:
                previous = send.claimed.earlier[send.lesson_key][1]
                deliveries.add((send.claimed.sequence, send.lesson_key, previous))
    enrollments: set[tuple[str, str]] = set()
    for settle in settles:
        status = settle.claimed.status
        after = {
            Verdict.SUPPRESSED: EnrollmentStatus.SUPPRESSED,
            Verdict.COMPLETED: EnrollmentStatus.COMPLETED,
            Verdict.HELD: status,
        }.get(settle.verdict, EnrollmentStatus.PAUSED if status == "active" else status)
        if after != status:
            enrollments.update(
                {(settle.claimed.sequence, status), (settle.claimed.sequence, after)}
            )
    for table, keys, count in (
        (DELIVERY_TALLIES, sorted(deliveries), "deliveries"),
        (ENROLLMENT_TALLIES, sorted(enrollments), "enrollments"),
    ):
        if keys:
            key = [c.name for c in table.primary_key.columns]
            upsert = pg_insert(table).values([dict(zip(key, k, strict=True)) for k in keys])
            conn.execute(
                upsert.on_conflict_do_update(index_elements=key, set_={count: table.c[count]})
            )


def attempted(status: DeliveryStatus, now: datetime, error: str) -> dict[str, Any]:
    """A delivery's values after a hand-off that failed with `error`."""
    return {
        "status": status,
        "updated_at": now,
        "last_error": keep_unknown(error),
        "attempts": D.c.attempts + 1,
    }
