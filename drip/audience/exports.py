"""Readers out of drip: every reader and enrollment as CSV (streamed) and one reader's
whole record as JSON (the right of access): engagement, each course's pace, replies too."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from drip.audience.segments import ids_of
from drip.store.filters import Filters, reader_conditions
from drip.store.models import (
    ConsentRecord,
    Enrollment,
    Event,
    Reply,
    SignUpRequest,
    Subscriber,
)

CSV_COLUMNS = [
    "email",
    "first_name",
    "timezone",
    "sequence",
    "status",
    "next_lesson",
    "due_at",
    "signed_up_at",
    "confirmed_at",
    "suppressed",
]


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula


def cell(value: str) -> str:
    """A value a spreadsheet shows as text: one that would start a formula gets a leading
    quote, as OWASP advises against CSV injection (=HYPERLINK(...) in a first name)."""
    return f"'{value}" if value.startswith(FORMULA_START) else value


def _stamp(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def readers_csv(
    sessions: sessionmaker[Session],
    now: datetime,
    segment: str | None = None,
    filters: Filters | None = None,
) -> Iterator[str]:
    """The CSV a row at a time, in a session of its own, so a million readers stream in
    constant memory. With `segment` (a name, checked by the caller) only its readers, as the
    database selects them at `now`; with `filters`, only the rows the admin's readers list
    shows for them (readers with no enrollment then have no row)."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(CSV_COLUMNS)
    with sessions() as session:
        if filters is None:
            statement = (
                select(Subscriber, Enrollment)
                .outerjoin(Enrollment, Enrollment.subscriber_id == Subscriber.id)
                .order_by(Subscriber.email, Enrollment.sequence)
            )
        else:
            statement = (
                select(Subscriber, Enrollment)
                .join(Enrollment, Enrollment.subscriber_id == Subscriber.id)
                .where(*reader_conditions(session, filters))
                .order_by(Enrollment.id)
            )
        if segment:
            statement = statement.where(Subscriber.id.in_(ids_of(session, segment, now)))
        result = session.execute(statement.execution_options(yield_per=500))
        for subscriber, enrollment in result:
            out.writerow(
                [
                    cell(text)
                    for text in [
                        subscriber.email,
                        subscriber.first_name,
                        subscriber.timezone,
                        enrollment.sequence if enrollment else "",
                        enrollment.status if enrollment else "",
                        (enrollment.next_lesson or "") if enrollment else "",
                        _stamp(enrollment.due_at if enrollment else None),
                        _stamp(enrollment.created_at if enrollment else subscriber.created_at),
                        _stamp(enrollment.confirmed_at if enrollment else None),
                        "yes" if subscriber.suppressed_at else "",
                    ]
                ]
            )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def reader_json(session: Session, subscriber: Subscriber) -> str:
    """Everything drip holds about one reader, as the JSON the operator hands over."""
    return json.dumps(export_subscriber(session, subscriber), indent=2, ensure_ascii=False)


def iso(value: datetime | None) -> str | None:
    """A time as JSON carries it (ISO 8601), None for none."""
    return value.isoformat() if value else None


def export_subscriber(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything kept about one reader, as JSON-ready data (a data-subject access request)."""
    return {
        "email": subscriber.email,
        "first_name": subscriber.first_name,
        "timezone": subscriber.timezone,
        "attributes": subscriber.attributes,
        "created_at": iso(subscriber.created_at),
        "suppressed_at": iso(subscriber.suppressed_at),
        "suppressed_reason": subscriber.suppressed_reason,
        "engagement": str(subscriber.engagement),
        "engaged_at": iso(subscriber.engaged_at),
        "consents": _consents(session, subscriber),
        "enrollments": [_enrollment(e) for e in subscriber.enrollments],
        "events": _events(session, subscriber),
        "waiting_sign_ups": _waiting_sign_ups(session, subscriber),
        "replies": replies_of(session, subscriber),
    }


def pace_json(enrollment: Enrollment) -> dict[str, Any]:
    """The reader's pace in a course: `slower` (each delay counted twice), and the pause
    they asked for, if any: `kind` "pause" or "away", `since`, `until` (none: until the
    reader comes back; a time gone by: the pause is over)."""
    pause = None
    if enrollment.paused_since is not None:
        pause = {
            "kind": enrollment.pause_kind or "pause",
            "since": iso(enrollment.paused_since),
            "until": iso(enrollment.resumes_at),
        }
    return {"slower": enrollment.slower, "pause": pause}


def replies_of(session: Session, subscriber: Subscriber) -> list[dict[str, Any]]:
    """The replies the reader wrote, newest first, each with the course and lesson (or the
    broadcast or offer, e.g. `broadcast-12`) it answers; none for a reply matched to nobody."""
    replies = session.scalars(
        select(Reply).where(Reply.subscriber_id == subscriber.id).order_by(Reply.id.desc())
    )
    return [
        {
            "id": r.id,
            "received_at": iso(r.received_at),
            "sequence": r.sequence,
            "lesson": r.lesson,
            "subject": r.subject,
            "body": r.body,
            "done_at": iso(r.done_at),
        }
        for r in replies
    ]


def _consents(session: Session, subscriber: Subscriber) -> list[dict[str, Any]]:
    consents = session.scalars(
        select(ConsentRecord)
        .where(ConsentRecord.subscriber_id == subscriber.id)
        .order_by(ConsentRecord.id)
    )
    return [
        {
            "at": iso(c.created_at),
            "source": c.source,
            "text": c.consent_text,
            "ip": c.ip,
            "user_agent": c.user_agent,
            "enrollment_id": c.enrollment_id,
        }
        for c in consents
    ]


def _enrollment(e: Enrollment) -> dict[str, Any]:
    return {
        "id": e.id,
        "sequence": e.sequence,
        "status": e.status,
        "next_lesson": e.next_lesson,
        "due_at": iso(e.due_at),
        "created_at": iso(e.created_at),
        "confirmed_at": iso(e.confirmed_at),
        "completed_at": iso(e.completed_at),
        "unsubscribed_at": iso(e.unsubscribed_at),
        "pace": pace_json(e),
        "deliveries": [
            {
                "lesson": d.lesson,
                "status": d.status,
                "message_id": d.message_id,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "sent_at": iso(d.sent_at),
                "updated_at": iso(d.updated_at),
            }
            for d in e.deliveries
        ],
    }


def _events(session: Session, subscriber: Subscriber) -> list[dict[str, Any]]:
    events = session.scalars(
        select(Event).where(Event.subscriber_id == subscriber.id).order_by(Event.at, Event.id)
    )
    return [
        {"at": iso(ev.at), "kind": ev.kind, "detail": ev.detail, "enrollment_id": ev.enrollment_id}
        for ev in events
    ]


def _waiting_sign_ups(session: Session, subscriber: Subscriber) -> list[dict[str, Any]]:
    waiting = session.scalars(
        select(SignUpRequest)
        .where(SignUpRequest.email == subscriber.email)
        .order_by(SignUpRequest.id)
    )
    return [
        {
            "at": iso(r.received_at),
            "sequence": r.sequence,
            "source": r.source,
            "text": r.consent_text,
            "ip": r.ip,
            "user_agent": r.user_agent,
            "problem": r.problem,
        }
        for r in waiting
    ]
