"""Broadcast copies: each reader's copy of a scheduled broadcast, a producer of the one
sender (drip.dispatch.sender), run after the lessons: each reader once (unique row), claimed
as a lease, inside the reader's send window, their status read again right before the
hand-off, with every other guarantee a lesson has. A copy names the reader's own courses
among the broadcast's; a copy whose course cannot be read waits, with the reason on the
broadcast's page.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, exists, select, update
from sqlalchemy.orm import Session

from drip.content.schedule import reader_zone
from drip.content.sequences import Library
from drip.dispatch.broadcast_variants import as_sent
from drip.dispatch.broadcast_winner import decide_due
from drip.dispatch.broadcasts import READERS, lesson_key, template_for, unreadable
from drip.dispatch.outcome import Kind, OutcomeStatus
from drip.dispatch.producers import Item, Lease, Settled, claim
from drip.mail.links import Links
from drip.mail.render import MessageTemplate, Renderer
from drip.store.models import (
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    Engagement,
    Enrollment,
    EventKind,
    RecipientStatus,
    Subscriber,
)

COPIES = cast(Table, BroadcastRecipient.__table__)
OPEN = [RecipientStatus.QUEUED, RecipientStatus.RETRYING, RecipientStatus.SENDING]
STATUS = {
    OutcomeStatus.SENT: RecipientStatus.SENT,
    OutcomeStatus.RETRYING: RecipientStatus.RETRYING,
    OutcomeStatus.HELD: RecipientStatus.QUEUED,
    OutcomeStatus.FAILED: RecipientStatus.FAILED,
    OutcomeStatus.SUPPRESSED: RecipientStatus.FAILED,
    OutcomeStatus.SKIPPED: RecipientStatus.SKIPPED,
}


class BroadcastCopies:
    """The producer of broadcast copies (drip.dispatch.producers.Producer)."""

    kind = Kind.BROADCAST
    sent_event: EventKind | None = (
        None  # the broadcast's page counts them; the timeline keeps the failures
    )
    failed_event = EventKind.NOT_SENT
    capped = True

    def __init__(self, library: Library, renderer: Renderer, links: Links) -> None:
        self.library, self.renderer, self.links = library, renderer, links
        self.templates: dict[tuple[int, tuple[str, ...], str | None], MessageTemplate] = {}

    def due(self, session: Session, now: datetime, limit: int, lease: Lease | None) -> list[Item]:
        due = COPIES.c.status.in_(OPEN) & (COPIES.c.due_at <= now)
        values = {} if lease is None else {"status": RecipientStatus.SENDING}
        if lease is not None:  # broadcast tests: the held readers get the winner first
            decide_due(session, now)
        ids = claim(session, COPIES, due, limit, lease, **values)
        if not ids:
            return []
        items = []
        for row in session.execute(
            select(
                COPIES,
                Enrollment.sequence,
                Subscriber.email,
                Subscriber.first_name,
                Subscriber.timezone,
            )
            .join(Enrollment, Enrollment.id == COPIES.c.enrollment_id)
            .join(Subscriber, Subscriber.id == COPIES.c.subscriber_id)
            .where(COPIES.c.id.in_(ids))
            .order_by(COPIES.c.due_at, COPIES.c.id)
        ):
            course = self.library.get(row.sequence)
            window = (course.window, reader_zone(row.timezone, course.timezone)) if course else None
            item = Item(
                row.id,
                row.enrollment_id,
                row.subscriber_id,
                row.email,
                row.first_name or "",
                row.sequence,
                lesson_key(row.broadcast_id),
                row.attempts,
                row.message_id,
                window,
                (row.broadcast_id, course, row.variant),  # variant: broadcast tests
            )
            item.extra = {"unsubscribe_url": self.links.stop_url(row.id)}
            items.append(item)
        return items

    def render(self, session: Session, item: Item) -> str | None:
        """The copy for this reader's own courses among the broadcast's, theirs first."""
        broadcast_id, course, variant = item.context
        broadcast = session.get(Broadcast, broadcast_id)
        if course is None:
            return unreadable(self.library, (item.sequence,))
        if broadcast is None:
            return None  # why_not says so
        statuses = READERS[broadcast.audience.get("readers", "both")]
        joined = set(
            session.scalars(
                select(Enrollment.sequence).where(
                    Enrollment.subscriber_id == item.subscriber_id,
                    Enrollment.sequence.in_(broadcast.audience["to"]),
                    Enrollment.status.in_(statuses),
                )
            )
        )
        others = [s for s in broadcast.audience["to"] if s in joined and s != course.slug]
        courses = (course.slug, *others)
        key = (broadcast.id, courses, variant)
        if key not in self.templates:  # as_sent: the reader's variant (broadcast tests)
            sent = as_sent(broadcast, variant)
            self.templates[key] = template_for(self.renderer, self.library, sent, courses)
        item.template = self.templates[key]
        return None

    def why_not(self, session: Session, item: Item) -> str:
        return _why_not(
            session.get(Broadcast, item.context[0]),
            session.get(Subscriber, item.subscriber_id),
            session.get(Enrollment, item.enrollment_id),
            self.library,
        )

    def write_ahead(self, session: Session, item: Item, worker: str) -> None:
        session.execute(
            update(COPIES)
            .where(COPIES.c.id == item.row_id, COPIES.c.lease_owner == worker)
            .values(message_id=item.message_id)
        )

    def settle(self, session: Session, item: Item, settled: Settled, worker: str) -> bool:
        values: dict[str, object] = {
            "status": STATUS[settled.status],
            "attempts": settled.attempts,
            "lease_owner": None,
        }
        if settled.status is not OutcomeStatus.HELD or settled.error:
            values["last_error"] = settled.error
        if settled.due_at is not None:
            values["due_at"] = settled.due_at
        if settled.status is OutcomeStatus.SENT:
            values["sent_at"] = settled.at
        changed = session.execute(
            update(COPIES)
            .where(COPIES.c.id == item.row_id, COPIES.c.lease_owner == worker)
            .values(**values)
        )
        return bool(getattr(changed, "rowcount", 0))

    def finish(self, session: Session) -> None:
        _finish(session)


def _why_not(
    broadcast: Broadcast | None,
    subscriber: Subscriber | None,
    enrollment: Enrollment | None,
    library: Library,
) -> str:
    """Read right before the hand-off: why this reader must not get it now, or ""."""
    if broadcast is None or broadcast.status == BroadcastStatus.CANCELLED:
        return "the broadcast was cancelled"
    if subscriber is None or enrollment is None:
        return "the reader was erased"
    if subscriber.suppressed_at is not None:
        return "the address is suppressed"
    if subscriber.broadcasts_off_at is not None:
        return "the reader asked for no more broadcasts"
    if subscriber.engagement == Engagement.GONE:
        return "the reader is gone: no answer to “Still want these?”"
    if enrollment.status not in READERS["both"] and not any(
        e.status in READERS["both"]
        for e in subscriber.enrollments
        if e.sequence in broadcast.audience["to"]
    ):
        return "the reader left"
    return ""


def _finish(session: Session) -> None:
    """A scheduled broadcast with no recipient left to send is done."""
    open_rows = select(BroadcastRecipient.id).where(
        BroadcastRecipient.broadcast_id == Broadcast.id,
        BroadcastRecipient.status.in_(
            [RecipientStatus.QUEUED, RecipientStatus.SENDING, RecipientStatus.RETRYING]
        ),
    )
    session.execute(
        update(Broadcast)
        .where(Broadcast.status == BroadcastStatus.SCHEDULED, ~exists(open_rows))
        .values(status=BroadcastStatus.DONE)
    )
    session.commit()
