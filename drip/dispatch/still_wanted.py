"""The one "still want the course?" email to a reader whose pause has lasted more than 60
days, as a producer of the one sender (drip.dispatch.sender): a row of `link_requests`
(`kind = 'still_wanted'`), queued at the start of a pass and due at the first opening of the
course's send window in the reader's zone.

One email per pause, no more: the enrollment is marked (`still_wanted_at`) by a conditional
UPDATE as its row is queued, so one worker queues it, once; a new pause asks afresh
(drip.audience.pace clears the mark).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from drip.audience.pace import STILL_WANTED_AFTER, holding
from drip.content.sequences import Library
from drip.dispatch.outcome import Kind
from drip.dispatch.producers import Item, Lease
from drip.dispatch.requested import E, Requested, S, queue_in_window
from drip.mail.render import Renderer
from drip.mail.still_wanted import STILL_WANTED, still_wanted_message
from drip.store.models import Enrollment, EnrollmentStatus, EventKind, Subscriber
from drip.store.queries import rare

BATCH = 200


def paused_long(session: Session, now: datetime) -> list[Enrollment]:
    """Readers paused by their own choice for more than 60 days, not asked yet."""
    return list(
        session.scalars(
            select(Enrollment)
            .join(Subscriber)
            .where(
                Enrollment.status == EnrollmentStatus.ACTIVE,
                # few are paused: the index of them (migration 0032), not every active one
                rare(session, Enrollment.paused_since <= now - STILL_WANTED_AFTER),
                Enrollment.still_wanted_at.is_(None),
                holding(now),
                Subscriber.suppressed_at.is_(None),
            )
            .order_by(Enrollment.id)
            .limit(BATCH)
        )
    )


def queue_still_wanted(
    session: Session, library: Library, now: datetime, *, dry_run: bool = False
) -> int:
    """Queue the email for each reader paused too long whose course loads, due in their
    window; commits (a dry run queues in the caller's transaction, to list and roll back)."""
    queued = 0
    for enrollment in paused_long(session, now):
        sequence = library.get(enrollment.sequence)
        if sequence is None:
            continue  # a broken course: a later pass asks
        taken = session.execute(
            update(Enrollment)
            .where(Enrollment.id == enrollment.id, Enrollment.still_wanted_at.is_(None))
            .values(still_wanted_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) != 1:
            continue  # another worker queued it
        queue_in_window(session, enrollment, STILL_WANTED, sequence, now)
        queued += 1
        if not dry_run:
            session.commit()
    return queued


# Read right before the hand-off (drip.dispatch.hot_path).
PAUSED_READ = (
    select(E.c.status.label("enrollment_status"), S.c.suppressed_at, E.c.paused_since)
    .join(S, S.c.id == E.c.subscriber_id)
    .where(E.c.id == bindparam("enrollment"))
)


class StillWanted(Requested):
    """The producer of "still want the course?" emails (drip.dispatch.producers.Producer)."""

    kind = Kind.STILL_WANTED
    kind_name = STILL_WANTED
    sent_event: EventKind | None = EventKind.PACE_STILL_WANTED_SENT
    failed_event = EventKind.NOT_SENT
    capped = False

    def __init__(self, library: Library, renderer: Renderer) -> None:
        self.library, self.renderer = library, renderer

    def due(self, session: Session, now: datetime, limit: int, lease: Lease | None) -> list[Item]:
        items = []
        for row in self.rows(session, now, limit, lease):
            sequence = self.library.get(row.sequence)
            items.append(self.item(row, STILL_WANTED, self.window_of(sequence, row), sequence))
        return items

    def render(self, session: Session, item: Item) -> str | None:
        if item.context is None:
            return (
                self.library.broken_reason(item.sequence) or f"the course {item.sequence!r} is gone"
            )
        item.template = still_wanted_message(self.renderer, item.context)
        return None

    def status_read(self, item: Item) -> tuple[Select[Any], dict[str, Any]]:
        return PAUSED_READ, {"enrollment": item.enrollment_id}

    def verdict(self, item: Item, row: Any) -> str:
        """Asked only of a reader still in the course, still paused by their own choice, who
        may be written to. From (enrollment's status, suppressed_at, paused_since), or
        None."""
        if row is None or row[0] != EnrollmentStatus.ACTIVE:
            return "the reader left"
        if row[1] is not None:
            return "the address is suppressed"
        return "" if row[2] is not None else "the reader came back"
