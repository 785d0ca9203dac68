"""The lessons of a claimed batch that wait because their reader's cap is reached
(drip.dispatch.caps): put back, due at the reader's next window, before anything is
written for them; the rest of the batch goes on as planned."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Connection, Table, case, literal, update

from drip.content.schedule import reader_zone
from drip.dispatch.caps import LOOK_BACK, Caps, Db, aware, handed_off, next_opening, tally
from drip.dispatch.plan import Plan, Send
from drip.dispatch.record import LEASE_LOST
from drip.dispatch.report import Outcome, OutcomeStatus
from drip.store.models import Enrollment

E = cast(Table, Enrollment.__table__)


@dataclass(frozen=True)
class Waiting:
    """A lesson over its reader's cap, and when its next window opens."""

    send: Send
    until: datetime


def over_cap(
    db: Db, plans: Sequence[Plan], now: datetime, caps: Caps, stale: Collection[int] = ()
) -> list[Waiting]:
    """Which of a batch's lessons wait for their reader's next window: per reader, those
    beyond what the caps still allow today and this week, the course that wrote least
    lately going first. The confirmation is never held.

    What each reader was handed is what the claim read (`Claimed.handed`), but read again
    here for the readers in `stale`, who may have been handed something since: a batch
    claimed while the one before it was sent, read again for that batch's readers."""
    lessons = [p for p in plans if isinstance(p, Send) and p.lesson is not None]
    if not lessons:
        return []
    moments: dict[int, Sequence[datetime]] = {}
    for send in lessons:
        if send.claimed.handed is not None:
            moments[send.claimed.reader.subscriber_id] = send.claimed.handed
    readers = {s.claimed.reader.subscriber_id for s in lessons}
    again = {r for r in readers if r not in moments or r in stale}
    fresh = handed_off(db, again, now - LOOK_BACK)
    moments.update({reader: fresh.get(reader, []) for reader in again})
    never = datetime.min.replace(tzinfo=UTC)

    def turn(send: Send) -> tuple[datetime, int]:
        at = send.claimed.last_sent_at  # read by the claim
        return (aware(at) if at is not None else never, send.claimed.enrollment_id)

    waiting: list[Waiting] = []
    ahead: dict[int, int] = {}
    for send in sorted(lessons, key=turn):
        reader = send.claimed.reader.subscriber_id
        zone = reader_zone(send.claimed.timezone, send.sequence.timezone)
        counted = tally(moments.get(reader, ()), now, zone)
        until = next_opening(now, zone, caps, counted, send.sequence.window, ahead.get(reader, 0))
        if until is None:
            ahead[reader] = ahead.get(reader, 0) + 1
        else:
            waiting.append(Waiting(send, until))
    return waiting


def hold_over_cap(
    conn: Connection,
    plans: list[Plan],
    now: datetime,
    caps: Caps,
    worker_id: str,
    stale: Collection[int] = (),
) -> tuple[list[Plan], list[Outcome]]:
    """The batch without its lessons over their reader's cap, and what became of those:
    each reader put back, due at their next window (only while this worker holds them).
    `stale`: readers who may have been handed something since the batch was claimed."""
    rest, waiting = split_over_cap(conn, plans, now, caps, stale)
    if not waiting:
        conn.commit()  # ends the caps' read, as a batch with lessons held does
        return rest, []
    # One statement for the batch, not one a reader (after a broadcast, most of a batch).
    untils = {w.send.claimed.enrollment_id: literal(w.until, E.c.due_at.type) for w in waiting}
    moved = set(
        conn.scalars(
            update(E)
            .where(E.c.id.in_(list(untils)), E.c.lease_owner == worker_id)
            .values(due_at=case(untils, value=E.c.id), lease_owner=None)
            .returning(E.c.id)
        )
    )
    conn.commit()
    return rest, [
        held_outcome(wait)
        if wait.send.claimed.enrollment_id in moved
        else wait.send.outcome(OutcomeStatus.SKIPPED, LEASE_LOST)
        for wait in waiting
    ]


def split_over_cap(
    db: Db, plans: list[Plan], now: datetime, caps: Caps, stale: Collection[int] = ()
) -> tuple[list[Plan], list[Waiting]]:
    """(the plans that go ahead, the lessons that wait); the dry run reports the second as
    held, changing nothing."""
    waiting = over_cap(db, plans, now, caps, stale)
    held = {id(wait.send) for wait in waiting}
    return [p for p in plans if id(p) not in held], waiting


def held_outcome(wait: Waiting) -> Outcome:
    return wait.send.outcome(OutcomeStatus.HELD, waiting_note(wait.until))


def waiting_note(until: datetime) -> str:
    return f"the reader's email cap is reached; waits until {until:%Y-%m-%d %H:%M} UTC"
