"""Leaving: one course, every course (a reader's link, a spam complaint), or suppression
(a bounce, an operator). Effective at once: the dispatcher re-checks the status right before
each hand-off, and the deliveries still waiting to be sent are cancelled here, in
`cancel_pending`, the one place that does it."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from drip.audience.subscriptions import SubscriptionError, record_event
from drip.store.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    EventKind,
    Subscriber,
)

PENDING = (DeliveryStatus.RETRYING, DeliveryStatus.SENDING)  # a delivery not yet handed off


def cancel_pending(session: Session, enrollment_ids: Collection[int], now: datetime) -> None:
    """Cancel the deliveries of these enrollments not yet handed off (retries and sends in
    flight): what a reader who left or an address suppressed must not get."""
    if enrollment_ids:
        session.execute(
            update(Delivery)
            .where(Delivery.enrollment_id.in_(list(enrollment_ids)), Delivery.status.in_(PENDING))
            .values(status=DeliveryStatus.CANCELLED, updated_at=now)
        )


def unsubscribe(
    session: Session,
    enrollment_id: int,
    now: datetime,
    *,
    everything: bool = False,
    how: str = "link",
) -> list[Enrollment]:
    """Leave one sequence, or all of them (`leave_everything`); the enrollments changed."""
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None:
        raise SubscriptionError("this link belongs to no subscription")
    if everything:
        return leave_everything(session, enrollment.subscriber, now, how)
    if enrollment.status == EnrollmentStatus.SUPPRESSED:
        return []  # it gets nothing already, and an operator lifting the block decides
    return _leave(session, [enrollment], now, how)


def leave_everything(
    session: Session, subscriber: Subscriber, now: datetime, how: str, *, reason: str = ""
) -> list[Enrollment]:
    """The reader leaves every sequence, whatever its state (a suppressed one too, so lifting
    the block later sends nothing): the unsubscribe page's "all of them" and a spam complaint
    alike. `reason` is kept as the enrollments' last error."""
    return _leave(session, subscriber.enrollments, now, how, reason=reason)


def _leave(
    session: Session, targets: Iterable[Enrollment], now: datetime, how: str, *, reason: str = ""
) -> list[Enrollment]:
    changed = []
    for target in targets:
        if target.status == EnrollmentStatus.UNSUBSCRIBED:
            continue
        target.status = EnrollmentStatus.UNSUBSCRIBED
        target.unsubscribed_at = now
        target.due_at = None
        if reason:
            target.last_error = reason
        record_event(session, target, EventKind.UNSUBSCRIBED, now, how)
        changed.append(target)
    cancel_pending(session, [t.id for t in changed], now)
    return changed


def suppress(session: Session, subscriber: Subscriber, now: datetime, reason: str) -> None:
    """Stop every email to this address, now and for any later sign-up, until lifted."""
    subscriber.suppressed_at = now
    subscriber.suppressed_reason = reason
    waiting = [
        e
        for e in subscriber.enrollments
        if e.status in (EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING, EnrollmentStatus.PAUSED)
    ]
    for enrollment in waiting:
        enrollment.status = EnrollmentStatus.SUPPRESSED
        enrollment.due_at = None
        record_event(session, enrollment, EventKind.SUPPRESSED, now, reason)
    cancel_pending(session, [e.id for e in waiting], now)
