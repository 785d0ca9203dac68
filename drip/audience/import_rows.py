"""Readers new to drip from a CSV import, written a chunk at a time with multi-row
INSERTs: the rows `subscribe` would write for each of them, without its per-reader
round trips (an import of a million rows would otherwise take hours)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause

from drip.audience.subscriptions import Consent, clean_timezone, normalize_email, starts_at_once
from drip.content.schedule import next_due, reader_zone
from drip.content.sequences import Sequence
from drip.mail.headers import header_safe
from drip.store.models import (
    ConsentRecord,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    Subscriber,
)


@dataclass(frozen=True)
class NewReader:
    """One CSV row, checked: its line, the address as stored, the name and zone given."""

    line: int
    email: str
    first_name: str
    timezone: str | None


def new_reader(sequence: Sequence, row: dict[str, str], line: int) -> NewReader:
    """The row as a reader; raises SubscriptionError for a bad address or time zone."""
    zone = row.get("timezone") or None
    if zone not in _ZONES:
        clean_timezone(zone, sequence)
        _ZONES.add(zone)
    return NewReader(
        line=line,
        email=address_of(row.get("email", "")),
        first_name=row.get("first_name", ""),
        timezone=zone,
    )


# A plain ASCII local part (RFC 5322's dot-atom, as email-validator accepts it unquoted).
_PLAIN = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAINS: dict[str, str] = {}  # domain as written -> as stored, for domains already checked
_ZONES: set[str | None] = set()  # time zones already found to exist


def address_of(raw: str) -> str:
    """`normalize_email(raw)`, without checking again a domain this process has already
    checked: in a large file most rows share a handful of domains, and the check of the
    domain is most of the validator's time. Anything unusual goes through the validator."""
    local, at, domain = raw.strip().rpartition("@")
    known = _DOMAINS.get(domain)
    if at and known and len(local) <= 64 and _PLAIN.fullmatch(local):
        address = f"{local}@{known}".lower()
        if len(address) <= 254:
            return address
    address = normalize_email(raw)
    if at and len(_DOMAINS) < 10_000:
        _DOMAINS[domain] = address.rpartition("@")[2]
    return address


def insert_new_readers(
    session: Session,
    sequence: Sequence,
    readers: list[NewReader],
    now: datetime,
    consent: Consent,
    *,
    confirmed: bool,
) -> None:
    """Subscribe readers drip does not have yet: what `subscribe` writes for a new reader
    (reader, enrollment, `signed_up` and, when the course starts at once, `confirmed`
    events, consent), four INSERTs for the lot. An address taken meanwhile raises
    IntegrityError; the caller's savepoint undoes the lot."""
    if not readers:
        return
    conn = session.connection()
    people = [_person(sequence, reader, now) for reader in readers]
    # No RETURNING: SQLite would take the rows one at a time to keep their order. The
    # addresses are unique, and the enrollments unique per reader and course.
    bulk_insert(conn, Subscriber.__table__, people)
    found = conn.execute(
        select(Subscriber.email, Subscriber.id).where(
            Subscriber.email.in_([person["email"] for person in people])
        )
    )
    ids = {email: subscriber_id for email, subscriber_id in found}
    courses = [
        {**_course(sequence, person, now, confirmed), "subscriber_id": ids[person["email"]]}
        for person in people
    ]
    bulk_insert(conn, Enrollment.__table__, courses)
    owners = [
        {"subscriber_id": subscriber_id, "enrollment_id": enrollment_id}
        for enrollment_id, subscriber_id in conn.execute(
            select(Enrollment.id, Enrollment.subscriber_id)
            .where(Enrollment.subscriber_id.in_(list(ids.values())))
            .where(Enrollment.sequence == sequence.slug)
            .order_by(Enrollment.id)
        )
    ]
    events = [
        {**o, "kind": EventKind.SIGNED_UP, "at": now, "detail": consent.source} for o in owners
    ]
    if how := starts_at_once(sequence, confirmed):
        events += [{**o, "kind": EventKind.CONFIRMED, "at": now, "detail": how} for o in owners]
    bulk_insert(conn, Event.__table__, events)
    record = {
        "created_at": now,
        "source": consent.source,
        "consent_text": consent.text,
        "ip": consent.ip,
        "user_agent": consent.user_agent,
    }
    bulk_insert(conn, ConsentRecord.__table__, [{**o, **record} for o in owners])


def bulk_insert(conn: Connection, table: FromClause, rows: list[dict[str, Any]]) -> None:
    """One executemany of `rows` (all with the same keys), each column's value converted
    for the driver once per distinct value: a chunk's timestamps, course and statuses are
    the same on every row, and SQLAlchemy converting each again was half the import's
    time. Every column with a Python default must be given (no default is applied)."""
    if not rows:
        return
    assert isinstance(table, Table)
    sql, order, positional, processes = _statement(table, tuple(rows[0]), conn.dialect)
    columns: list[Any] = list(zip(*(itemgetter(*order)(row) for row in rows), strict=True))
    for index, process in enumerate(processes):
        if process is not None:
            columns[index] = list(map(_remembered(process), columns[index]))
    if positional:
        params: list[Any] = list(zip(*columns, strict=True))
    else:
        params = [dict(zip(order, row, strict=True)) for row in zip(*columns, strict=True)]
    conn.exec_driver_sql(sql, params)


@lru_cache(maxsize=64)
def _statement(
    table: Table, keys: tuple[str, ...], dialect: Dialect
) -> tuple[str, tuple[str, ...], bool, list[Any]]:
    """The INSERT's SQL, its parameters in order, and each one's bind processing."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    if missing := set(compiled.binds) - set(keys):
        raise ValueError(f"bulk_insert into {table.name} needs {sorted(missing)}")
    order = tuple(compiled.positiontup or keys)
    if len(order) < 2:  # itemgetter of one key gives the value, not a tuple
        raise ValueError(f"bulk_insert into {table.name} takes two columns or more")
    processes = [table.c[key].type.dialect_impl(dialect).bind_processor(dialect) for key in order]
    return compiled.string, order, compiled.positional, processes


def _remembered(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`process`, remembered per value (for hashable values) for one statement."""
    seen: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        try:
            return seen[value]
        except KeyError:
            seen[value] = done = process(value)
            return done
        except TypeError:  # a dict, say: converted each time
            return process(value)

    return convert


def _person(sequence: Sequence, reader: NewReader, now: datetime) -> dict[str, Any]:
    return {
        "email": reader.email,
        "first_name": header_safe(reader.first_name)[:100],
        "created_at": now,
        "timezone": clean_timezone(reader.timezone, sequence),
        "attributes": {},
        "suppressed_at": None,
        "suppressed_reason": None,
    }


def _course(
    sequence: Sequence, person: dict[str, Any], now: datetime, confirmed: bool
) -> dict[str, Any]:
    """The enrollment `subscribe` then `activate` leave for a reader with nothing sent."""
    course: dict[str, Any] = {
        "sequence": sequence.slug,
        "created_at": now,
        "status": EnrollmentStatus.PENDING,
        "attempts": 0,
        "due_at": now,  # a double opt-in course: the dispatcher sends the confirmation
        "next_lesson": None,
        "confirmed_at": None,
    }
    if not starts_at_once(sequence, confirmed):
        return course
    course["confirmed_at"] = now
    lesson = sequence.next_lesson(set())
    if lesson is None:
        return {**course, "status": EnrollmentStatus.COMPLETED, "due_at": None}
    zone = reader_zone(person["timezone"], sequence.timezone)
    return {
        **course,
        "status": EnrollmentStatus.ACTIVE,
        "next_lesson": lesson.key,
        "due_at": next_due(now, lesson.delay, sequence.window, zone),
    }
