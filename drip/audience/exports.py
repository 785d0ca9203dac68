"""Readers out of drip: every reader and enrollment as CSV (streamed) and one reader's
whole record as JSON (the right of access)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from drip.audience.segments import ids_of
from drip.audience.subscriptions import export_subscriber
from drip.store.models import Enrollment, Subscriber
from drip.store.queries import Filters, reader_conditions

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
