"""Courses that continue into others: `on_complete: {enroll: <slug>}` starts a reader who
finished this course on the next one; `on_complete: {offer: <slug>}` sends them one email
whose signed link starts it (no second confirmation: they already confirmed with us).

Run at the start of every dispatch pass, so a chained welcome goes out in the same pass,
in the reader's window, and an offer is queued for the one sender (drip.dispatch.offers).
A reader already in (or done with) the next course is not enrolled twice; a suppressed
reader, or one who left everything, is never chained (leaving everything turns even
finished courses into "unsubscribed", so they never come up here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from drip.audience.subscriptions import Consent, SubscriptionError, subscribe
from drip.content.sequences import Library, Sequence
from drip.dispatch.offers import OFFER
from drip.dispatch.requested import queue_in_window
from drip.store.models import (
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    Subscriber,
)

RECENT = timedelta(days=7)  # a course finished longer ago than this is not chained any more
BATCH = 500


@dataclass
class Chained:
    enrolled: int = 0
    offered: int = 0  # offers queued for the one sender
    failed: int = 0


def _already_in(session: Session, subscriber_id: int, slug: str) -> bool:
    return (
        session.scalar(
            select(Enrollment.id).where(
                Enrollment.subscriber_id == subscriber_id, Enrollment.sequence == slug
            )
        )
        is not None
    )


def enroll_next(
    session: Session,
    library: Library,
    subscriber: Subscriber,
    finished: Sequence,
    target: Sequence,
    now: datetime,
    how: str,
) -> Enrollment | None:
    """Start `target` for the reader, once; None when they are already in it."""
    if subscriber.suppressed_at is not None or _already_in(session, subscriber.id, target.slug):
        return None
    enrollment = subscribe(
        session,
        library,
        target.slug,
        subscriber.email,
        now,
        first_name=subscriber.first_name,
        timezone=subscriber.timezone,
        confirmed=True,
        consent=Consent(
            source=f"{how} after finishing {finished.slug}",
            text=f"Confirmed for “{finished.title}”, which continues into “{target.title}”.",
        ),
    )
    session.add(
        Event(
            subscriber_id=subscriber.id,
            enrollment_id=enrollment.id,
            kind=EventKind.CHAINED,
            at=now,
            detail=f"{how} after finishing {finished.slug}",
        )
    )
    return enrollment


def _finished_lately(session: Session, library: Library, now: datetime) -> list[Enrollment]:
    """The enrollments whose `on_complete` is still to be carried out, oldest first."""
    sources = [s.slug for s in library.sequences.values() if s.on_complete is not None]
    if not sources:
        return []
    return list(
        session.scalars(
            select(Enrollment)
            .where(
                Enrollment.status == EnrollmentStatus.COMPLETED,
                Enrollment.chained_at.is_(None),
                Enrollment.sequence.in_(sources),
                Enrollment.completed_at >= now - RECENT,
            )
            .order_by(Enrollment.id)
            .limit(BATCH)
        )
    )


def chain(session: Session, library: Library, now: datetime, *, dry_run: bool = False) -> Chained:
    """Carry out `on_complete` for the readers who finished a course lately, committing
    each: `enroll` starts the next course, `offer` queues the offer for the one sender
    (drip.dispatch.offers), due at the first opening of the reader's window. A dry run
    only queues the offers, in the caller's transaction, for it to list and roll back."""
    result = Chained()
    for enrollment in _finished_lately(session, library, now):
        finished = library.sequences[enrollment.sequence]
        assert finished.on_complete is not None
        action, slug = finished.on_complete
        target = library.get(slug)
        if target is None:
            continue  # the next course is broken or gone: try again when it is back
        if action == "enroll":
            if dry_run:
                continue
            try:
                if enroll_next(
                    session, library, enrollment.subscriber, finished, target, now, "enrolled"
                ):
                    result.enrolled += 1
            except SubscriptionError:
                session.rollback()
                result.failed += 1
                continue
            enrollment.chained_at = now
        elif _take(session, enrollment, now):
            queue_in_window(session, enrollment, OFFER, finished, now)
            result.offered += 1
        if not dry_run:
            session.commit()
    return result


def _take(session: Session, enrollment: Enrollment, now: datetime) -> bool:
    """Mark the enrollment chained as its offer is queued, if no other worker did: one
    worker queues it, once."""
    taken = session.execute(
        update(Enrollment)
        .where(Enrollment.id == enrollment.id, Enrollment.chained_at.is_(None))
        .values(chained_at=now)
        .execution_options(synchronize_session=False)
    )
    return getattr(taken, "rowcount", 0) == 1


@dataclass(frozen=True)
class Offer:
    """An open offer: the enrollment that finished, its course, and the course on offer."""

    enrollment: Enrollment
    finished: Sequence
    target: Sequence


def open_offer(session: Session, library: Library, enrollment_id: int) -> Offer:
    """The offer an offer email's link names; raises SubscriptionError when it is closed."""
    enrollment = session.get(Enrollment, enrollment_id) if 0 < enrollment_id < 2**31 else None
    if enrollment is None:
        raise SubscriptionError("this link belongs to no course")
    finished = library.get(enrollment.sequence)
    if finished is None or finished.on_complete is None or finished.on_complete[0] != "offer":
        raise SubscriptionError("this offer is not open any more")
    target = library.get(finished.on_complete[1])
    if target is None:
        raise SubscriptionError(
            "the course on offer is not available just now; please try again later"
        )
    return Offer(enrollment, finished, target)


def accept_offer(session: Session, library: Library, enrollment_id: int, now: datetime) -> Sequence:
    """The reader pressed "yes" in the offer email: start the next course, once, however
    many times the link is used. Returns the offered course."""
    offer = open_offer(session, library, enrollment_id)
    subscriber = offer.enrollment.subscriber
    if subscriber.suppressed_at is not None:
        raise SubscriptionError("we stopped sending to this address; write to us to lift it")
    enroll_next(session, library, subscriber, offer.finished, offer.target, now, "offer accepted")
    return offer.target
