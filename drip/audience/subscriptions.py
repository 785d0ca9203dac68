"""Sign-up, enrollment, confirmation, rejoining: functions of a session, the content, `now`.

Web handlers and CLI commands call these; none of them knows about HTTP. Each keeps its
consent and timeline records in the same transaction as the change itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from drip.content.schedule import next_due, reader_zone
from drip.content.sequences import Lesson, Library, Sequence
from drip.mail.headers import header_safe
from drip.store.models import (
    ConsentRecord,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
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
    session: Session, enrollment: Enrollment, kind: EventKind, now: datetime, detail: str = ""
) -> None:
    """One entry on the reader's timeline."""
    session.add(
        Event(
            subscriber_id=enrollment.subscriber_id,
            enrollment_id=enrollment.id,
            kind=kind,
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
    if subscriber is None:
        person: dict[str, Any] = {
            "email": address,
            "first_name": name,
            "created_at": now,
            "timezone": clean_timezone(timezone, sequence),
            "attributes": dict(attributes or {}),
            "suppressed_at": None,
            "suppressed_reason": None,
        }
        return _new_reader(session, sequence, person, now, consent, confirmed)
    subscriber.first_name = subscriber.first_name or name
    if attributes:
        subscriber.attributes = {**subscriber.attributes, **attributes}
    return _returning_reader(session, sequence, subscriber, now, consent, confirmed)


def subscribe_reader(
    session: Session,
    library: Library,
    subscriber: Subscriber,
    slug: str,
    now: datetime,
    *,
    consent: Consent,
    confirmed: bool,
) -> Enrollment:
    """`subscribe` for a reader drip already has (the API, a bulk move, a chained course):
    their address, name and time zone as they are."""
    return subscribe(
        session,
        library,
        slug,
        subscriber.email,
        now,
        consent=consent,
        first_name=subscriber.first_name,
        timezone=subscriber.timezone,
        confirmed=confirmed,
    )


def _consent_row(consent: Consent, now: datetime) -> dict[str, Any]:
    return {
        "created_at": now,
        "source": consent.source,
        "consent_text": consent.text,
        "ip": consent.ip,
        "user_agent": consent.user_agent,
    }


def _record_consent(
    session: Session,
    subscriber: Subscriber,
    enrollment: Enrollment,
    consent: Consent,
    now: datetime,
) -> None:
    """The consent record of a sign-up, in the same transaction (a Core insert: cheaper)."""
    row = {"subscriber_id": subscriber.id, "enrollment_id": enrollment.id}
    session.connection().execute(_INSERT_CONSENT, {**row, **_consent_row(consent, now)})


def _new_reader(
    session: Session,
    sequence: Sequence,
    person: dict[str, Any],
    now: datetime,
    consent: Consent,
    confirmed: bool,
) -> Enrollment:
    """A new reader has no enrollment to look for, and every choice is made up front: the
    four rows are four plain inserts (the unit of work would cost more than the database
    does), then the reader and the enrollment join the session as if loaded."""
    opt_in = starts_at_once(sequence, confirmed)
    course: dict[str, Any] = {
        "sequence": sequence.slug,
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
        _INSERT_EVENT, {**ids, "kind": EventKind.SIGNED_UP, "at": now, "detail": consent.source}
    )
    conn.execute(_INSERT_CONSENT, {**ids, **_consent_row(consent, now)})
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


def _returning_reader(
    session: Session,
    sequence: Sequence,
    subscriber: Subscriber,
    now: datetime,
    consent: Consent,
    confirmed: bool,
) -> Enrollment:
    """A known address: enrolled (again) in the course, a confirmation queued unless the
    course starts at once; a suppressed address gets nothing until an operator lifts it."""
    enrollment = enroll(session, subscriber, sequence.slug, now, consent.source)
    _record_consent(session, subscriber, enrollment, consent, now)
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


def enroll(
    session: Session, subscriber: Subscriber, slug: str, now: datetime, source: str
) -> Enrollment:
    """The reader's enrollment in a course, made pending (with its "signed up" event) when
    they have none or had left it; one already there is returned as it is. Every way in
    (sign-up, import, the API, a chained course) enrolls through here."""
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
        record_event(session, enrollment, EventKind.SIGNED_UP, now, source)
    elif enrollment.status in LEFT:
        enrollment.status = EnrollmentStatus.PENDING
        enrollment.created_at = now
        enrollment.unsubscribed_at = None
        record_event(session, enrollment, EventKind.SIGNED_UP, now, f"again, {source}")
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
    _record_consent(session, subscriber, enrollment, consent, now)
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
