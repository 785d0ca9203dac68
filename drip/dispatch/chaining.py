"""Courses that continue into others: `on_complete: {enroll: <slug>}` starts a reader who
finished this course on the next one; `on_complete: {offer: <slug>}` sends them one email
whose signed link starts it (no second confirmation: they already confirmed with us).

Run at the start of every dispatch pass, so a chained welcome goes out in the same pass,
in the reader's window. A reader already in (or done with) the next course is not enrolled
twice; a suppressed reader, or one who left everything, is never chained (leaving
everything turns even finished courses into "unsubscribed", so they never come up here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from drip.audience.subscriptions import Consent, SubscriptionError, subscribe
from drip.content.schedule import into_window, reader_zone
from drip.content.sequences import Library, Sequence
from drip.deliverability.bounces import return_path
from drip.dispatch.outcome import Kind, Outcome, OutcomeStatus
from drip.mail.handoff import Unsendable, checked_message
from drip.mail.links import Links
from drip.mail.message_ids import new_message_id, sending_domain
from drip.mail.pace import PacedRelay
from drip.mail.render import Reader, Renderer
from drip.mail.transports import OnFirstSend, SendError, Transport
from drip.store.models import Engagement, Enrollment, EnrollmentStatus, Event, Subscriber

RECENT = timedelta(days=7)  # a course finished longer ago than this is not chained any more
BATCH = 500


@dataclass
class Chained:
    enrolled: int = 0
    offered: int = 0
    failed: int = 0
    outcomes: list[Outcome] = field(default_factory=list)  # of the offers

    def count(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.offered += outcome.status is OutcomeStatus.SENT
        self.failed += outcome.status is not OutcomeStatus.SENT


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
            kind="chained",
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


def _offer_due(
    session: Session, enrollment: Enrollment, finished: Sequence, target: Sequence, now: datetime
) -> bool:
    """An offer goes to a reader who may be written to and is not in the next course yet,
    inside the send window of the course they finished, in their zone (the one window
    function, drip.content.schedule); outside it, a later pass offers."""
    subscriber = enrollment.subscriber
    zone = reader_zone(subscriber.timezone, finished.timezone)
    return (
        subscriber.suppressed_at is None
        and subscriber.engagement != Engagement.GONE  # engagement: no offers to the gone
        and not _already_in(session, subscriber.id, target.slug)
        and into_window(now, finished.window, zone) == now
    )


def would_offer(session: Session, library: Library, now: datetime) -> list[Outcome]:
    """The offers a pass at `now` would send (the dry run), by the same tests."""
    found = []
    for enrollment in _finished_lately(session, library, now):
        finished = library.sequences[enrollment.sequence]
        assert finished.on_complete is not None
        action, slug = finished.on_complete
        target = library.get(slug)
        if action == "offer" and target and _offer_due(session, enrollment, finished, target, now):
            found.append(_outcome(enrollment, target, OutcomeStatus.WOULD_SEND))
    return found


def chain(
    session: Session,
    library: Library,
    renderer: Renderer,
    links: Links,
    transport: PacedRelay,
    now: datetime,
) -> Chained:
    """Carry out `on_complete` for the readers who finished a course lately; commits each."""
    result = Chained()
    with OnFirstSend(transport) as relay:
        for enrollment in _finished_lately(session, library, now):
            finished = library.sequences[enrollment.sequence]
            assert finished.on_complete is not None
            action, slug = finished.on_complete
            target = library.get(slug)
            if target is None:
                continue  # the next course is broken or gone: try again when it is back
            if action == "enroll":
                try:
                    if enroll_next(
                        session, library, enrollment.subscriber, finished, target, now, "enrolled"
                    ):
                        result.enrolled += 1
                except SubscriptionError:
                    session.rollback()
                    result.failed += 1
                    continue
            else:
                if into_window(now, finished.window, _zone(enrollment, finished)) != now:
                    continue  # outside the reader's window: a later pass offers
                transport.slot()  # the wait before the checks, not between them and the hand-off
                if not _take(session, enrollment, now):
                    continue  # another worker is offering it
                if _offer_due(session, enrollment, finished, target, now):
                    outcome = _offer(
                        session, relay, renderer, links, enrollment, (finished, target), now
                    )
                    result.count(outcome)
                    if outcome.status is OutcomeStatus.RETRYING:
                        enrollment.chained_at = None  # the next pass offers again
                        session.commit()
                    if outcome.relay_down:
                        break
                    if outcome.status is OutcomeStatus.RETRYING:
                        continue
            enrollment.chained_at = now
            session.commit()
    return result


def _take(session: Session, enrollment: Enrollment, now: datetime) -> bool:
    """Mark the enrollment chained before its offer goes out, if no other worker did: one
    worker offers it, once (a failure that may be retried unmarks it)."""
    taken = session.execute(
        update(Enrollment)
        .where(Enrollment.id == enrollment.id, Enrollment.chained_at.is_(None))
        .values(chained_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return getattr(taken, "rowcount", 0) == 1


def _zone(enrollment: Enrollment, finished: Sequence) -> ZoneInfo:
    return reader_zone(enrollment.subscriber.timezone, finished.timezone)


def _offer(
    session: Session,
    relay: Transport,
    renderer: Renderer,
    links: Links,
    enrollment: Enrollment,
    courses: tuple[Sequence, Sequence],
    now: datetime,
) -> Outcome:
    """Send the offer email and put it on the reader's timeline. Failed for good on an
    SMTP refusal, or a message that cannot be built or addressed for this reader;
    retrying on a transient refusal, up to DRIP_MAX_ATTEMPTS (a relay's "slow down"
    charges no attempt); `relay_down` when the rest must wait. `courses`: the one
    finished and the one on offer."""
    subscriber, (finished, target) = enrollment.subscriber, courses
    template = renderer.offer(finished, target)
    reader = Reader(subscriber.email, subscriber.first_name, subscriber.id, enrollment.id)
    mid = _offer_id(session, enrollment, target, renderer, template.sender)
    down = False
    try:
        relay.send(
            return_path(renderer.settings, template.sender, None, enrollment.id),
            subscriber.email,
            checked_message(subscriber.email, lambda: template.build(reader, links, mid, now)),
            name=f"{now:%Y%m%dT%H%M%S}-{enrollment.id}-offer",
        )
    except (Unsendable, SendError) as error:
        session.rollback()
        throttled = isinstance(error, SendError) and error.throttled
        down = error.connection or throttled
        if error.transient and not throttled:
            enrollment.attempts += 1
            enrollment.last_error = str(error)
            session.commit()
        if error.transient and enrollment.attempts < renderer.settings.max_attempts:
            return _outcome(enrollment, target, OutcomeStatus.RETRYING, str(error), down)
        kind, detail, status = "offer_failed", str(error), OutcomeStatus.FAILED
    else:
        kind, detail, status = "offered", f"{target.slug} ({mid})", OutcomeStatus.SENT
    session.add(
        Event(
            subscriber_id=subscriber.id,
            enrollment_id=enrollment.id,
            kind=kind,
            at=now,
            detail=detail,
        )
    )
    return _outcome(
        enrollment, target, status, "" if status is OutcomeStatus.SENT else detail, down
    )


def _outcome(
    enrollment: Enrollment,
    target: Sequence,
    status: OutcomeStatus,
    detail: str = "",
    relay_down: bool = False,
) -> Outcome:
    return Outcome(
        enrollment.id,
        enrollment.subscriber.email,
        enrollment.sequence,
        f"offer-{target.slug}",
        status,
        detail,
        relay_down,
        kind=Kind.OFFER,
    )


def _offer_id(
    session: Session, enrollment: Enrollment, target: Sequence, renderer: Renderer, sender: str
) -> str:
    """The offer's Message-ID, written on the enrollment before the hand-off: the next pass
    offers again under the same id if this one's outcome is not recorded."""
    if enrollment.pending_message_id is None:
        domain = sending_domain(sender, renderer.domain)
        enrollment.pending_message_id = new_message_id(
            renderer.settings.secret_key, enrollment.id, f"offer-{target.slug}", domain
        )
        session.commit()
    return enrollment.pending_message_id


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
