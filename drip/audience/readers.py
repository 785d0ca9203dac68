"""Readers as the REST API sees them: create, read, change, erase, enroll, and their
timeline. Plain functions of a session and `now`; drip/web/api/v1.py only translates."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from drip.audience.controls import pause, resume
from drip.audience.erasure import erase_subscribers
from drip.audience.exports import iso, pace_json
from drip.audience.leaving import unsubscribe
from drip.audience.subscriptions import (
    Consent,
    SubscriptionError,
    normalize_email,
    subscribe_reader,
)
from drip.audience.tags import tags_of
from drip.content.sequences import Library
from drip.core.config import Settings
from drip.mail import outbox
from drip.store.models import (
    ConsentRecord,
    Engagement,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    Reply,
    Subscriber,
)
from drip.store.queries import after_id

MAX_PAGE = 200


class ReaderError(ValueError):
    """A request the API refuses; `code` is the stable error code ("not_found", "exists",
    "conflict", "invalid_<field>", ...), which the web layer maps to its HTTP status."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


def _zone(name: str | None) -> str:
    if not name:
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReaderError(
            f"unknown time zone {name!r} (use an IANA name such as Asia/Kolkata)",
            field_code("timezone"),
        ) from None
    return name


def field_code(name: str) -> str:
    return f"invalid_{name}"


def reader_json(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "first_name": subscriber.first_name,
        "timezone": subscriber.timezone,
        "created_at": iso(subscriber.created_at),
        "suppressed": subscriber.suppressed_at is not None,
        "engagement": str(subscriber.engagement),
        "tags": tags_of(session, subscriber.id),
        "enrollments": [
            enrollment_json(e) for e in sorted(subscriber.enrollments, key=lambda e: e.id)
        ],
    }


def enrollment_json(enrollment: Enrollment) -> dict[str, Any]:
    return {
        "id": enrollment.id,
        "sequence": enrollment.sequence,
        "status": enrollment.status,
        "next_lesson": enrollment.next_lesson,
        "due_at": iso(enrollment.due_at),
        "confirmed_at": iso(enrollment.confirmed_at),
        "completed_at": iso(enrollment.completed_at),
        "pace": pace_json(enrollment),
    }


def get_reader(session: Session, reader_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, reader_id) if 0 < reader_id < 2**31 else None
    if subscriber is None:
        raise ReaderError(f"there is no reader {reader_id}", "not_found")
    return subscriber


def create_reader(
    session: Session,
    email: str,
    now: datetime,
    *,
    first_name: str = "",
    timezone: str | None = None,
    consent_source: str,
    caller: str,
) -> Subscriber:
    """A reader with no course yet, and the consent the client says it holds."""
    if not consent_source.strip():
        raise ReaderError(
            "consent_source is required: where did the reader agree to hear "
            'from you (e.g. "webinar sign-up sheet, 2026-11-30")?',
            field_code("consent_source"),
        )
    try:
        address = normalize_email(email)
    except SubscriptionError as error:
        raise ReaderError(str(error), field_code("email")) from None
    existing = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if existing is not None:
        raise ReaderError(f"a reader with this address exists: {existing.id}", "exists")
    subscriber = Subscriber(
        email=address,
        first_name=first_name.strip()[:100],
        timezone=_zone(timezone),
        attributes={},
        created_at=now,
    )
    session.add(subscriber)
    session.flush()
    session.add(
        ConsentRecord(
            subscriber_id=subscriber.id,
            created_at=now,
            source=f"api ({caller}): {consent_source.strip()}"[:200],
            consent_text=consent_source.strip(),
        )
    )
    session.add(
        Event(subscriber_id=subscriber.id, kind=EventKind.CREATED, at=now, detail=f"api ({caller})")
    )
    return subscriber


def update_reader(subscriber: Subscriber, changes: dict[str, Any]) -> None:
    unknown = sorted(set(changes) - {"first_name", "timezone"})
    if unknown:
        raise ReaderError(f"only first_name and timezone can be changed, not {unknown}")
    if "first_name" in changes:
        if not isinstance(changes["first_name"], str):
            raise ReaderError("first_name is a string", field_code("first_name"))
        subscriber.first_name = changes["first_name"].strip()[:100]
    if "timezone" in changes:
        if not isinstance(changes["timezone"], str):
            raise ReaderError("timezone is a string", field_code("timezone"))
        subscriber.timezone = _zone(changes["timezone"])


def erase_reader(session: Session, subscriber: Subscriber, settings: Settings) -> int:
    """Erase the reader and everything about them, and commit; with the embedded outbox,
    their sent mail goes too (after the commit: files cannot be rolled back). Returns how
    many outbox messages were removed."""
    return erase_readers(session, [subscriber.id], settings)[1]


def erase_readers(
    session: Session, subscriber_ids: Collection[int], settings: Settings
) -> tuple[int, int]:
    """`erase_reader` for many readers at once (the admin's bulk erase): how many readers
    were erased and how many outbox messages went with them."""
    addresses = erase_subscribers(session, subscriber_ids)
    # their replies go with them by foreign key; unmatched ones name only the address
    session.execute(delete(Reply).where(func.lower(Reply.sender).in_(addresses)))
    session.commit()
    removed = (
        0 if settings.smtp_url or not addresses else outbox.erase(settings.outbox_dir, addresses)
    )
    return len(addresses), removed


def enroll(
    session: Session,
    library: Library,
    subscriber: Subscriber,
    slug: str,
    now: datetime,
    *,
    confirmed: bool,
    caller: str,
) -> Enrollment:
    """Start a course for the reader: with the confirmation email, or at once when the
    client vouches for the consent (`confirmed`)."""
    sequence = library.get(slug)
    if sequence is None:
        known = ", ".join(sorted(library.sequences))
        raise ReaderError(f"unknown sequence {slug!r} (known: {known})", "unknown_sequence")
    try:
        return subscribe_reader(
            session,
            library,
            subscriber,
            slug,
            now,
            confirmed=confirmed,
            consent=Consent(
                source=f"api ({caller})" + (" (client vouched)" if confirmed else ""),
                text=sequence.consent,
            ),
        )
    except SubscriptionError as error:
        raise ReaderError(str(error)) from None


def change_enrollment(
    session: Session,
    library: Library,
    subscriber: Subscriber,
    slug: str,
    action: str,
    now: datetime,
    caller: str,
) -> Enrollment:
    enrollment = next((e for e in subscriber.enrollments if e.sequence == slug), None)
    if enrollment is None:
        raise ReaderError(f"the reader is not in {slug!r}", "not_found")
    try:
        if action == "pause":
            pause(session, enrollment, now, f"api ({caller})")
        elif action == "resume":
            resume(session, library, enrollment, now)
        elif action == "leave":
            unsubscribe(session, enrollment.id, now, how=f"api ({caller})")
        else:
            raise ReaderError(f"unknown action {action!r}: pause, resume or leave")
    except SubscriptionError as error:
        raise ReaderError(str(error), "conflict") from None
    if action == "resume" and enrollment.status == EnrollmentStatus.PAUSED:
        raise ReaderError("the course could not be resumed", "conflict")
    return enrollment


def timeline(
    session: Session, subscriber: Subscriber, after: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """The reader's events, oldest first, from the id after `after`; and the next cursor."""
    rows, cursor = after_id(
        session, select(Event).where(Event.subscriber_id == subscriber.id), Event.id, after, limit
    )
    sequence_of = {e.id: e.sequence for e in subscriber.enrollments}
    data = [
        {
            "id": e.id,
            "kind": e.kind,
            "at": iso(e.at),
            "detail": e.detail,
            "sequence": sequence_of.get(e.enrollment_id) if e.enrollment_id else None,
        }
        for e in rows
    ]
    return data, cursor


def page_of_readers(
    session: Session, after: int, limit: int, engagement: str = ""
) -> tuple[list[Subscriber], int | None]:
    """A page of readers by id; with `engagement`, only those in that state
    (drip.audience.engagement), through `ix_subscribers_engagement_id`."""
    statement = select(Subscriber)
    if engagement:
        if engagement not in set(Engagement):
            raise ReaderError("engagement is engaged, quiet or gone", "invalid_engagement")
        statement = statement.where(Subscriber.engagement == engagement)
    return after_id(session, statement, Subscriber.id, after, limit)
