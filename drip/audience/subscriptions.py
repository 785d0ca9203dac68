"""Sign-up, confirmation, leaving: plain functions of a session, the content and `now`.

Web handlers and CLI commands call these; none of them knows about HTTP. Each keeps its
consent and timeline records in the same transaction as the change itself.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from drip.content.schedule import next_due, reader_zone
from drip.content.sequences import Lesson, Library, Sequence
from drip.mail.render import header_safe
from drip.store.models import (
    ConsentRecord,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    RateLimit,
    SequenceState,
    SignUpRequest,
    Subscriber,
)
from drip.store.queries import lessons_sent_to

RESEND_AFTER = timedelta(minutes=5)  # a second sign-up re-sends the confirmation at most this often
LEFT = (EnrollmentStatus.UNSUBSCRIBED, EnrollmentStatus.EXPIRED)
_CONFIRMABLE = (EnrollmentStatus.PENDING, EnrollmentStatus.EXPIRED)


class SubscriptionError(ValueError):
    """The request cannot be honoured; the message says what and why."""


@dataclass(frozen=True)
class Consent:
    """Where a sign-up came from and what the reader was shown."""

    source: str
    text: str
    ip: str | None = None
    user_agent: str | None = None


def normalize_email(raw: str, *, check_domain: bool = False) -> str:
    """The address as stored: validated, domain lower-cased; raises SubscriptionError."""
    try:
        result = validate_email(raw.strip(), check_deliverability=check_domain)
    except EmailNotValidError as error:
        raise SubscriptionError(f"{raw.strip()!r} is not a valid email address: {error}") from None
    # An IDN domain is sent to its punycode form: any relay carries it, no SMTPUTF8 needed.
    return (result.ascii_email or result.normalized).lower()


def clean_timezone(name: str | None, sequence: Sequence) -> str:
    """The reader's IANA zone, or the sequence's default when none was given."""
    if not name:
        return sequence.timezone
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SubscriptionError(
            f"unknown time zone {name!r} (use an IANA name such as Asia/Kolkata)"
        ) from None
    return name


def find_sequence(library: Library, slug: str) -> Sequence:
    sequence = library.get(slug)
    if sequence is None:
        if broken := library.broken_reason(slug):
            raise SubscriptionError(broken)
        known = ", ".join(sorted(library.sequences)) or "none"
        raise SubscriptionError(f"unknown sequence {slug!r} (known: {known})")
    return sequence


def record_event(
    session: Session, enrollment: Enrollment, kind: EventKind | str, now: datetime, detail: str = ""
) -> None:
    """One entry on the reader's timeline; a kind given as text must be an `EventKind`."""
    session.add(
        Event(
            subscriber_id=enrollment.subscriber_id,
            enrollment_id=enrollment.id,
            kind=EventKind(kind),
            at=now,
            detail=detail,
        )
    )


_SUBSCRIBER_ID = select(Subscriber.id).where(Subscriber.email == bindparam("email"))
_ENROLLMENT_OF = select(Enrollment).where(
    Enrollment.subscriber_id == bindparam("subscriber"), Enrollment.sequence == bindparam("slug")
)
_INSERT_CONSENT = insert(ConsentRecord)
_INSERT_EVENT = insert(Event)
_INSERT_SUBSCRIBER = insert(Subscriber).returning(Subscriber.id)
_INSERT_ENROLLMENT = insert(Enrollment).returning(Enrollment.id)


def starts_at_once(sequence: Sequence, confirmed: bool) -> str:
    """Why the course starts without a confirmation email, or "" when it waits for one."""
    if confirmed:
        return "operator vouched for consent"
    return "" if sequence.double_opt_in else "single opt-in"


def subscribe(
    session: Session,
    library: Library,
    slug: str,
    email: str,
    now: datetime,
    *,
    consent: Consent,
    first_name: str = "",
    timezone: str | None = None,
    confirmed: bool = False,
    attributes: dict[str, Any] | None = None,
    check_domain: bool = False,
) -> Enrollment:
    """Sign a reader up for a sequence, or bring a returning one back.

    Without `confirmed` (the operator vouching for consent) a double opt-in sequence waits
    for the reader to confirm: the dispatcher sends the confirmation email.
    """
    sequence = find_sequence(library, slug)
    address = normalize_email(email, check_domain=check_domain)
    name = header_safe(first_name)[:100]
    session.flush()  # as a query would: what the session holds is written first
    known = session.connection().scalar(_SUBSCRIBER_ID, {"email": address})  # Core: cheaper
    subscriber = None if known is None else session.get(Subscriber, known)
    consent_row = {
        "created_at": now,
        "source": consent.source,
        "consent_text": consent.text,
        "ip": consent.ip,
        "user_agent": consent.user_agent,
    }
    enrollment: Enrollment | None
    if subscriber is None:
        # A new reader has no enrollment to look for, and every choice is made up front:
        # the four rows are four plain inserts (the unit of work would cost more than the
        # database does), then the reader and the enrollment join the session as if loaded.
        person: dict[str, Any] = {
            "email": address,
            "first_name": name,
            "created_at": now,
            "timezone": clean_timezone(timezone, sequence),
            "attributes": dict(attributes or {}),
            "suppressed_at": None,
            "suppressed_reason": None,
        }
        opt_in = starts_at_once(sequence, confirmed)
        course: dict[str, Any] = {
            "sequence": slug,
            "created_at": now,
            "status": EnrollmentStatus.PENDING,
            "attempts": 0,
            "due_at": None if opt_in else now,  # now: send the confirmation
            "next_lesson": None,
            "lease_owner": None,
            "last_error": None,
            "paused_reason": None,
            "confirmation_sent_at": None,
            "confirmed_at": None,
            "last_sent_at": None,
            "completed_at": None,
            "unsubscribed_at": None,
        }
        conn = session.connection()
        person["id"] = conn.execute(_INSERT_SUBSCRIBER, person).scalar_one()
        course["id"] = conn.execute(
            _INSERT_ENROLLMENT, {**course, "subscriber_id": person["id"]}
        ).scalar_one()
        ids = {"subscriber_id": person["id"], "enrollment_id": course["id"]}
        conn.execute(
            _INSERT_EVENT, {**ids, "kind": "signed_up", "at": now, "detail": consent.source}
        )
        conn.execute(_INSERT_CONSENT, {**ids, **consent_row})
        subscriber = Subscriber(**person)
        enrollment = Enrollment(**course, subscriber_id=person["id"])
        for row in (subscriber, enrollment):  # every column is set: nothing left to load
            make_transient_to_detached(row)
            session.add(row)
        set_committed_value(enrollment, "subscriber", subscriber)
        set_committed_value(subscriber, "enrollments", [enrollment])
        if opt_in:
            activate(session, sequence, enrollment, subscriber, now, opt_in)
        return enrollment
    subscriber.first_name = subscriber.first_name or name
    if attributes:
        subscriber.attributes = {**subscriber.attributes, **attributes}
    enrollment = session.scalar(_ENROLLMENT_OF, {"subscriber": subscriber.id, "slug": slug})
    if enrollment is None:
        enrollment = Enrollment(
            subscriber_id=subscriber.id,
            sequence=slug,
            created_at=now,
            status=EnrollmentStatus.PENDING,
            attempts=0,
        )
        session.add(enrollment)
        session.flush()
        record_event(session, enrollment, EventKind.SIGNED_UP, now, consent.source)
    elif enrollment.status in LEFT:
        enrollment.status = EnrollmentStatus.PENDING
        enrollment.created_at = now
        enrollment.unsubscribed_at = None
        record_event(session, enrollment, EventKind.SIGNED_UP, now, f"again, {consent.source}")
    session.connection().execute(
        _INSERT_CONSENT,
        {"subscriber_id": subscriber.id, "enrollment_id": enrollment.id, **consent_row},
    )
    if subscriber.suppressed_at is not None and not confirmed:
        return enrollment  # a bounced address gets nothing until an operator lifts it
    if enrollment.status == EnrollmentStatus.PENDING:
        if how := starts_at_once(sequence, confirmed):
            activate(
                session, sequence, enrollment, subscriber, now, how, lift_suppression=confirmed
            )
        elif (
            enrollment.confirmation_sent_at is None
            or now - enrollment.confirmation_sent_at >= RESEND_AFTER
        ):
            enrollment.due_at = now  # the dispatcher sends the confirmation
            enrollment.attempts = 0
    return enrollment


def activate(
    session: Session,
    sequence: Sequence,
    enrollment: Enrollment,
    subscriber: Subscriber,
    now: datetime,
    how: str,
    *,
    lift_suppression: bool = False,
) -> Lesson | None:
    """Start (or resume) the course: the first lesson the reader has not had becomes due.
    Returns that lesson, or None when every lesson has gone out (the course is complete).

    Only an operator's action lifts a suppression (`lift_suppression`): a reader cannot undo
    a bounce or a block by signing up again."""
    lesson = sequence.next_lesson(set(lessons_sent_to(session, enrollment.id)))
    enrollment.confirmed_at = enrollment.confirmed_at or now
    enrollment.attempts = 0
    enrollment.last_error = None
    enrollment.paused_reason = None
    if lift_suppression and subscriber.suppressed_at is not None:
        subscriber.suppressed_at = None
        subscriber.suppressed_reason = None
    if lesson is None:
        enrollment.status = EnrollmentStatus.COMPLETED
        enrollment.next_lesson = enrollment.due_at = None
    else:
        enrollment.status = EnrollmentStatus.ACTIVE
        enrollment.next_lesson = lesson.key
        zone = reader_zone(subscriber.timezone, sequence.timezone)
        enrollment.due_at = next_due(now, lesson.delay, sequence.window, zone)
    record_event(session, enrollment, EventKind.CONFIRMED, now, how)
    return lesson


def confirm(session: Session, library: Library, enrollment_id: int, now: datetime) -> Enrollment:
    """The reader confirmed with the link. Idempotent; a reader who left stays out, and a
    suppressed address stays suppressed (the attempt goes on the timeline)."""
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None:
        raise SubscriptionError("this confirmation link belongs to no sign-up")
    if enrollment.subscriber.suppressed_at is not None:
        record_event(
            session,
            enrollment,
            EventKind.CONFIRM_REFUSED,
            now,
            "the address is suppressed: "
            f"{enrollment.subscriber.suppressed_reason or 'by an operator'}",
        )
        return enrollment
    if enrollment.status in (EnrollmentStatus.PENDING, EnrollmentStatus.EXPIRED):
        sequence = find_sequence(library, enrollment.sequence)
        # Twenty clicks at once all read "pending"; only the request whose UPDATE changes
        # the row confirms (the others wait for its lock and then match nothing), so the
        # event, its webhook and the welcome follow the change once.
        claimed = session.connection().execute(
            update(Enrollment)
            .where(Enrollment.id == enrollment.id, Enrollment.status.in_(_CONFIRMABLE))
            .values(status=EnrollmentStatus.ACTIVE)
        )
        if claimed.rowcount != 1:
            session.refresh(enrollment)  # another request confirmed it: show what it did
            return enrollment
        activate(session, sequence, enrollment, enrollment.subscriber, now, "link in email")
    return enrollment


def unsubscribe(
    session: Session,
    enrollment_id: int,
    now: datetime,
    *,
    everything: bool = False,
    how: str = "link",
) -> list[Enrollment]:
    """Leave one sequence, or all of them. Effective at once: the dispatcher re-checks the
    status right before each hand-off, and pending retries are cancelled here."""
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None:
        raise SubscriptionError("this link belongs to no subscription")
    targets = list(enrollment.subscriber.enrollments) if everything else [enrollment]
    changed = []
    for target in targets:
        if target.status in (EnrollmentStatus.UNSUBSCRIBED, EnrollmentStatus.SUPPRESSED):
            continue
        target.status = EnrollmentStatus.UNSUBSCRIBED
        target.unsubscribed_at = now
        target.due_at = None
        record_event(session, target, EventKind.UNSUBSCRIBED, now, how)
        changed.append(target)
    if changed:
        session.execute(
            update(Delivery)
            .where(
                Delivery.enrollment_id.in_([t.id for t in changed]),
                Delivery.status.in_([DeliveryStatus.RETRYING, DeliveryStatus.SENDING]),
            )
            .values(status=DeliveryStatus.CANCELLED, updated_at=now)
        )
    return changed


def pause(session: Session, enrollment: Enrollment, now: datetime, reason: str) -> None:
    if enrollment.status == EnrollmentStatus.ACTIVE:
        enrollment.status = EnrollmentStatus.PAUSED
        enrollment.paused_reason = reason
        record_event(session, enrollment, EventKind.PAUSED, now, reason)


def resume(session: Session, library: Library, enrollment: Enrollment, now: datetime) -> None:
    """Back to active with the next lesson due now (not a burst of everything missed)."""
    if enrollment.status == EnrollmentStatus.PAUSED:
        sequence = find_sequence(library, enrollment.sequence)
        if (
            activate(
                session,
                sequence,
                enrollment,
                enrollment.subscriber,
                now,
                "resumed",
                lift_suppression=True,
            )
            is not None
        ):
            enrollment.due_at = now
        record_event(session, enrollment, EventKind.RESUMED, now)


def rejoin(
    session: Session, library: Library, enrollment: Enrollment, now: datetime, *, consent: Consent
) -> None:
    """A reader who left comes back from the preferences page.

    A reader who once confirmed has shown they own the address (the preferences link came
    by email), so the course resumes where they left it; one who never did confirms first.
    """
    if enrollment.status not in LEFT:
        return
    subscriber = enrollment.subscriber
    if subscriber.suppressed_at is not None:
        raise SubscriptionError(
            "mail to this address bounced, so we stopped sending; write to us to lift the block"
        )
    sequence = find_sequence(library, enrollment.sequence)
    session.add(
        ConsentRecord(
            subscriber_id=subscriber.id,
            enrollment_id=enrollment.id,
            created_at=now,
            source=consent.source,
            consent_text=consent.text,
            ip=consent.ip,
            user_agent=consent.user_agent,
        )
    )
    enrollment.unsubscribed_at = None
    record_event(session, enrollment, EventKind.REJOINED, now, consent.source)
    if enrollment.confirmed_at is not None or not sequence.double_opt_in:
        activate(session, sequence, enrollment, subscriber, now, "rejoined")
    else:
        enrollment.status = EnrollmentStatus.PENDING
        enrollment.created_at = now
        enrollment.due_at = now
        enrollment.attempts = 0


def resend_confirmation(session: Session, enrollment: Enrollment, now: datetime) -> bool:
    """Queue a fresh confirmation email for an unconfirmed sign-up (at most every few
    minutes); an expired one gets a new confirmation window. False when nothing was queued."""
    if enrollment.status not in (EnrollmentStatus.PENDING, EnrollmentStatus.EXPIRED):
        return False
    if enrollment.subscriber.suppressed_at is not None:
        return False
    if (
        enrollment.confirmation_sent_at is not None
        and now - enrollment.confirmation_sent_at < RESEND_AFTER
    ):
        return False
    if enrollment.status == EnrollmentStatus.EXPIRED:
        enrollment.status = EnrollmentStatus.PENDING
        enrollment.created_at = now
    enrollment.due_at = now
    enrollment.attempts = 0
    record_event(session, enrollment, EventKind.CONFIRMATION_REQUESTED, now)
    return True


# -- operator actions (the admin pages) -------------------------------------------------------


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
    if (
        activate(
            session,
            sequence,
            enrollment,
            enrollment.subscriber,
            now,
            "restarted",
            lift_suppression=True,
        )
        is not None
    ):
        enrollment.due_at = now
    record_event(
        session,
        enrollment,
        EventKind.RESTARTED,
        now,
        f"previously sent: {', '.join(sent) or 'nothing'}",
    )


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
    if waiting:
        session.execute(
            update(Delivery)
            .where(
                Delivery.enrollment_id.in_([e.id for e in waiting]),
                Delivery.status.in_([DeliveryStatus.RETRYING, DeliveryStatus.SENDING]),
            )
            .values(status=DeliveryStatus.CANCELLED, updated_at=now)
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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export_subscriber(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything kept about one reader, as JSON-ready data (a data-subject access request)."""
    consents = session.scalars(
        select(ConsentRecord)
        .where(ConsentRecord.subscriber_id == subscriber.id)
        .order_by(ConsentRecord.id)
    )
    events = session.scalars(
        select(Event).where(Event.subscriber_id == subscriber.id).order_by(Event.at, Event.id)
    )
    waiting = session.scalars(
        select(SignUpRequest)
        .where(SignUpRequest.email == subscriber.email)
        .order_by(SignUpRequest.id)
    )
    return {
        "email": subscriber.email,
        "first_name": subscriber.first_name,
        "timezone": subscriber.timezone,
        "attributes": subscriber.attributes,
        "created_at": _iso(subscriber.created_at),
        "suppressed_at": _iso(subscriber.suppressed_at),
        "suppressed_reason": subscriber.suppressed_reason,
        "consents": [
            {
                "at": _iso(c.created_at),
                "source": c.source,
                "text": c.consent_text,
                "ip": c.ip,
                "user_agent": c.user_agent,
                "enrollment_id": c.enrollment_id,
            }
            for c in consents
        ],
        "enrollments": [
            {
                "id": e.id,
                "sequence": e.sequence,
                "status": e.status,
                "next_lesson": e.next_lesson,
                "due_at": _iso(e.due_at),
                "created_at": _iso(e.created_at),
                "confirmed_at": _iso(e.confirmed_at),
                "completed_at": _iso(e.completed_at),
                "unsubscribed_at": _iso(e.unsubscribed_at),
                "deliveries": [
                    {
                        "lesson": d.lesson,
                        "status": d.status,
                        "message_id": d.message_id,
                        "attempts": d.attempts,
                        "last_error": d.last_error,
                        "sent_at": _iso(d.sent_at),
                        "updated_at": _iso(d.updated_at),
                    }
                    for d in e.deliveries
                ],
            }
            for e in subscriber.enrollments
        ],
        "events": [
            {
                "at": _iso(ev.at),
                "kind": ev.kind,
                "detail": ev.detail,
                "enrollment_id": ev.enrollment_id,
            }
            for ev in events
        ],
        "waiting_sign_ups": [
            {
                "at": _iso(r.received_at),
                "sequence": r.sequence,
                "source": r.source,
                "text": r.consent_text,
                "ip": r.ip,
                "user_agent": r.user_agent,
                "problem": r.problem,
            }
            for r in waiting
        ],
    }


def erase_subscriber(session: Session, subscriber: Subscriber) -> None:
    """Delete the reader and, through the foreign keys' ON DELETE CASCADE, their enrollments,
    deliveries, consent records and timeline; sign-ups of the address still waiting to be
    taken in and the rate-limit counters naming it go too. The caller commits."""
    erase_subscribers(session, [subscriber.id])


def erase_subscribers(session: Session, subscriber_ids: Collection[int]) -> list[str]:
    """`erase_subscriber` for many readers in a few statements (the admin's bulk erase);
    the addresses erased. The caller commits."""
    ids = sorted(set(subscriber_ids))
    addresses = list(session.scalars(select(Subscriber.email).where(Subscriber.id.in_(ids))))
    if addresses:
        session.execute(delete(Subscriber).where(Subscriber.id.in_(ids)))
        session.execute(delete(SignUpRequest).where(SignUpRequest.email.in_(addresses)))
        for start in range(0, len(addresses), 100):  # SQLite refuses an OR 1,000 deep
            session.execute(
                delete(RateLimit).where(
                    or_(*(RateLimit.key.endswith(f":{a}") for a in addresses[start : start + 100]))
                )
            )
    session.expunge_all()
    return addresses
