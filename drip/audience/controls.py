"""What an operator does to one reader's course from the admin: pause, resume, restart, retry
a delivery, hold a whole sequence. Each is a plain function of a session, the content and
`now`, with its timeline record in the same transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from drip.audience.subscriptions import SubscriptionError, activate, find_sequence, record_event
from drip.content.sequences import Library, Sequence
from drip.store.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    EventKind,
    SequenceState,
)
from drip.store.queries import lessons_sent_to


def pause(session: Session, enrollment: Enrollment, now: datetime, reason: str) -> None:
    if enrollment.status == EnrollmentStatus.ACTIVE:
        enrollment.status = EnrollmentStatus.PAUSED
        enrollment.paused_reason = reason
        record_event(session, enrollment, EventKind.PAUSED, now, reason)


def _due_now(
    session: Session, sequence: Sequence, enrollment: Enrollment, now: datetime, how: str
) -> None:
    """Activate the course (an operator's doing, so a suppression is lifted) with the next
    lesson due now, not after its delay."""
    subscriber = enrollment.subscriber
    lesson = activate(session, sequence, enrollment, subscriber, now, how, lift_suppression=True)
    if lesson is not None:
        enrollment.due_at = now


def resume(session: Session, library: Library, enrollment: Enrollment, now: datetime) -> None:
    """Back to active with the next lesson due now (not a burst of everything missed)."""
    if enrollment.status == EnrollmentStatus.PAUSED:
        sequence = find_sequence(library, enrollment.sequence)
        _due_now(session, sequence, enrollment, now, "resumed")
        record_event(session, enrollment, EventKind.RESUMED, now)


def restart(session: Session, library: Library, enrollment: Enrollment, now: datetime) -> None:
    """Start the course again from its first lesson. Deliveries are unique per lesson, so the
    old ones are removed; the timeline keeps a note of what had been sent."""
    if enrollment.status in (EnrollmentStatus.PENDING, EnrollmentStatus.EXPIRED):
        raise SubscriptionError("the reader has not confirmed yet: there is nothing to restart")
    if enrollment.status == EnrollmentStatus.UNSUBSCRIBED:
        raise SubscriptionError("the reader left this course; only they can rejoin it")
    if enrollment.subscriber.suppressed_at is not None:
        raise SubscriptionError("the address is suppressed: lift the block first")
    sequence = find_sequence(library, enrollment.sequence)
    sent = lessons_sent_to(session, enrollment.id)
    session.execute(delete(Delivery).where(Delivery.enrollment_id == enrollment.id))
    session.expire(enrollment, ["deliveries"])
    enrollment.status = EnrollmentStatus.ACTIVE
    enrollment.completed_at = enrollment.last_sent_at = None
    enrollment.lease_owner = None
    _due_now(session, sequence, enrollment, now, "restarted")
    record_event(
        session,
        enrollment,
        EventKind.RESTARTED,
        now,
        f"previously sent: {', '.join(sent) or 'nothing'}",
    )


def retry_delivery(
    session: Session,
    library: Library,
    delivery: Delivery,
    now: datetime,
    *,
    lift_suppression: bool = True,
) -> None:
    """Send a failed (or waiting) lesson again at the next pass, with a fresh attempt count.

    A permanent failure suppressed the address; retrying it lifts that block, which only an
    operator looking at this one reader should do (`lift_suppression=False` refuses)."""
    enrollment = delivery.enrollment
    if delivery.status not in (DeliveryStatus.FAILED, DeliveryStatus.RETRYING):
        raise SubscriptionError(f"this delivery is {delivery.status}: nothing to retry")
    if enrollment.status in (
        EnrollmentStatus.UNSUBSCRIBED,
        EnrollmentStatus.COMPLETED,
        EnrollmentStatus.EXPIRED,
    ):
        raise SubscriptionError(f"the reader's enrollment is {enrollment.status}")
    if not lift_suppression and (
        enrollment.status == EnrollmentStatus.SUPPRESSED
        or enrollment.subscriber.suppressed_at is not None
    ):
        raise SubscriptionError("the address is suppressed after a permanent failure")
    if enrollment.status == EnrollmentStatus.SUPPRESSED:
        enrollment.status = EnrollmentStatus.PAUSED  # the operator lifts the block to retry
    if enrollment.status == EnrollmentStatus.PAUSED:
        resume(session, library, enrollment, now)
    else:
        enrollment.due_at = now
        enrollment.attempts = 0
        enrollment.lease_owner = None
    delivery.status = DeliveryStatus.RETRYING
    delivery.updated_at = now
    record_event(session, enrollment, EventKind.RETRY_REQUESTED, now, delivery.lesson)


def set_sequence_paused(session: Session, slug: str, paused: bool, now: datetime) -> None:
    """Hold or release a whole sequence; the dispatcher skips paused ones when it claims."""
    state = session.get(SequenceState, slug)
    if state is None:
        session.add(SequenceState(sequence=slug, paused=paused, updated_at=now))
    else:
        state.paused = paused
        state.updated_at = now
