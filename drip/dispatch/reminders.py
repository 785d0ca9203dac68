"""The confirmation's one reminder: a sign-up still unconfirmed a day after it was made gets
one plain "did you mean to sign up?" with the same signed confirm link, never a second.

A producer of the one sender (drip.dispatch.sender): a row of `link_requests`
(`kind = 'confirm-reminder'`) queued at the start of a pass, the sign-up marked
(`confirm_reminded_at`) by a conditional UPDATE as it is queued, so one worker queues it,
once. Like the confirmation it answers something the reader did: it goes at any hour, and
the per-reader caps (drip.dispatch.caps) neither hold nor count it. The sign-up still
expires DRIP_CONFIRM_DAYS after it was made.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from drip.content.sequences import Library, Sequence
from drip.core.paths import TEMPLATES
from drip.dispatch.outcome import Kind
from drip.dispatch.producers import Item, Lease
from drip.dispatch.requested import READER_READ, Requested
from drip.mail.render import MessageTemplate, Renderer
from drip.store.models import Enrollment, EnrollmentStatus, EventKind, LinkRequest, Subscriber

REMIND_AFTER = timedelta(hours=24)  # after the sign-up, not after the confirmation email
REMINDER = "confirm-reminder"  # its name in Message-IDs, outbox files and the pass's report
BATCH = 500


def _not_reminded() -> ColumnElement[bool]:
    """No reminder for this sign-up yet: none ever, or only for an earlier one (a reader who
    left, or whose sign-up expired, and signed up again: `created_at` is the new one's)."""
    return or_(
        Enrollment.confirm_reminded_at.is_(None),
        Enrollment.confirm_reminded_at < Enrollment.created_at,
    )


def due_reminders(session: Session, now: datetime, confirm_days: int) -> list[Enrollment]:
    """Sign-ups made more than a day ago, not confirmed, not expired, whose confirmation
    went out and whose reminder has not: oldest first."""
    return list(
        session.scalars(
            select(Enrollment)
            .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
            .where(
                Enrollment.status == EnrollmentStatus.PENDING,
                Enrollment.created_at <= now - REMIND_AFTER,
                Enrollment.created_at >= now - timedelta(days=confirm_days),
                Enrollment.confirmation_sent_at.is_not(None),
                _not_reminded(),
                Subscriber.suppressed_at.is_(None),
            )
            .order_by(Enrollment.id)
            .limit(BATCH)
        )
    )


def queue_reminders(
    session: Session, library: Library, now: datetime, confirm_days: int, *, dry_run: bool = False
) -> int:
    """Queue the reminder of each sign-up due one whose course loads, marking it; commits
    (a dry run queues in the caller's transaction, to list and roll back)."""
    queued = 0
    for enrollment in due_reminders(session, now, confirm_days):
        if library.get(enrollment.sequence) is None:
            continue  # its course cannot be read: a later pass reminds
        taken = session.execute(
            update(Enrollment)
            .where(
                Enrollment.id == enrollment.id,
                _not_reminded(),
                Enrollment.status == EnrollmentStatus.PENDING,
            )
            .values(confirm_reminded_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) != 1:
            continue  # another worker queued it
        session.add(LinkRequest(enrollment_id=enrollment.id, kind=REMINDER, requested_at=now))
        queued += 1
        if not dry_run:
            session.commit()
    return queued


def reminder(renderer: Renderer, sequence: Sequence) -> MessageTemplate:
    return renderer.from_file(
        sequence,
        TEMPLATES / "email" / "confirm-reminder.md",
        REMINDER,
        {"sequence_title": sequence.title},
        button=("Yes, send it to me", "{{ confirm_url }}"),
    )


class Reminders(Requested):
    """The producer of confirmation reminders (drip.dispatch.producers.Producer)."""

    kind = Kind.CONFIRMATION
    kind_name = REMINDER
    sent_event: EventKind | None = EventKind.CONFIRMATION_REMINDED
    failed_event = EventKind.NOT_SENT
    capped = False

    def __init__(self, library: Library, renderer: Renderer) -> None:
        self.library, self.renderer = library, renderer

    def due(self, session: Session, now: datetime, limit: int, lease: Lease | None) -> list[Item]:
        return [
            # At any hour: it answers the reader's own sign-up.
            self.item(row, REMINDER, None, self.library.get(row.sequence))
            for row in self.rows(session, now, limit, lease)
        ]

    def render(self, session: Session, item: Item) -> str | None:
        if item.context is None:
            return (
                self.library.broken_reason(item.sequence) or f"the course {item.sequence!r} is gone"
            )
        item.template = reminder(self.renderer, item.context)
        return None

    def status_read(self, item: Item) -> tuple[Select[Any], dict[str, Any]]:
        return READER_READ, {"enrollment": item.enrollment_id}

    def verdict(self, item: Item, row: Any) -> str:
        """Only a sign-up still waiting for its confirmation, at an address drip may write
        to. From (enrollment's status, suppressed_at, engagement), or None."""
        if row is None or row[0] != EnrollmentStatus.PENDING:
            return "the sign-up is confirmed, or over"
        return "the address is suppressed" if row[1] is not None else ""
