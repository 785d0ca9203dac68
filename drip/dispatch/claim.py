"""Claim: which readers are due, and a lease on them for this worker.

A claim is a lease: claiming moves `due_at` to the end of the lease, so the readers of a
worker that dies fall due again by themselves. Several workers on PostgreSQL claim disjoint
rows (`FOR UPDATE SKIP LOCKED`); on SQLite `dispatch_lock` lets one process dispatch at a
time, and a second one refuses with the reason.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Table, and_, not_, select, update
from sqlalchemy.engine import Engine

from drip.content.schedule import STEADY, Pace
from drip.deliverability.sending_pause import sending_paused
from drip.dispatch.caps import handed_off
from drip.mail.render import Reader
from drip.store import queries
from drip.store.db import sqlite_file
from drip.store.models import (
    HOLD_CONTENT,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Subscriber,
)

E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
# What the claim reads of each enrollment (`load` takes these rows), the reader's pace too
# (drip.audience.pace).
READ = (
    E.c.id,
    E.c.status,
    E.c.sequence,
    E.c.next_lesson,
    E.c.attempts,
    E.c.subscriber_id,
    E.c.slower,
    E.c.resumes_at,
    E.c.last_sent_at,
)
PEEK_CHUNK = 500  # readers the dry run loads at a time


class DispatchLocked(Exception):
    """Another worker holds the SQLite dispatch lock."""


@dataclass(frozen=True)
class Claimed:
    """One due reader as the pass found them: everything planning needs, read once."""

    enrollment_id: int
    status: EnrollmentStatus
    sequence: str
    next_lesson: str | None  # as recorded: what to name when the sequence cannot be read
    attempts: int
    reader: Reader
    timezone: str
    suppressed: bool
    sent: frozenset[str]  # lessons already delivered
    earlier: Mapping[str, tuple[int, DeliveryStatus, str]]  # lesson -> (id, status,
    # Message-ID) of a delivery not sent yet
    confirmation_sent_at: datetime | None = None  # the last confirmation email's, if any
    pending_message_id: str | None = None  # of a confirmation not yet recorded as sent
    pace: Pace = STEADY  # the reader's own pace in this course (drip.audience.pace)
    last_sent_at: datetime | None = None  # the course's last hand-off: its turn under the caps
    # When the reader was handed each capped message lately, as the claim read them
    # (drip.dispatch.caps.handed_off); None where the claim did not read them.
    handed: tuple[datetime, ...] | None = None


def _unconfirmed_too_long(now: datetime, confirm_days: int) -> ColumnElement[bool]:
    return and_(
        E.c.status == EnrollmentStatus.PENDING, E.c.created_at < now - timedelta(days=confirm_days)
    )


def expire_unconfirmed(conn: Connection, now: datetime, confirm_days: int) -> None:
    """A sign-up never confirmed within `confirm_days` stops being due."""
    conn.execute(
        update(E)
        .where(_unconfirmed_too_long(now, confirm_days))
        .values(status=EnrollmentStatus.EXPIRED, due_at=None)
    )
    conn.commit()


def resume_held(conn: Connection, slugs: Collection[str], now: datetime) -> int:
    """Make the readers held for their course's content due now, in the sequences that load
    whole again (the content changed): they need not wait out their hold. How many."""
    if not slugs:
        return 0
    resumed = conn.execute(
        update(E)
        .where(
            E.c.sequence.in_(sorted(slugs)),
            E.c.status.in_([EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING]),
            E.c.lease_owner.is_(None),
            E.c.due_at > now,
            E.c.hold_reason == HOLD_CONTENT,
        )
        .values(due_at=now)
    ).rowcount
    conn.commit()
    return int(resumed or 0)


def lease(
    conn: Connection,
    now: datetime,
    *,
    worker_id: str,
    batch_size: int,
    lease_end: datetime,
    skip_locked: bool,
    handed_since: datetime | None = None,
) -> list[Claimed]:
    """Take up to a batch of due enrollments: this worker's until `lease_end`. Nothing while
    a guardrail has paused all sending (drip.deliverability.bounces). With `handed_since`,
    what each reader was handed since then is read too, for their caps."""
    if sending_paused(conn):
        return []
    due = queries.longest_due(conn, now, batch_size, skip_locked=skip_locked)
    rows = conn.execute(
        update(E)
        .where(E.c.id.in_(due.scalar_subquery()))
        .values(due_at=lease_end, lease_owner=worker_id)
        .returning(*READ)
    ).all()
    conn.commit()
    claimed = load(conn, rows, handed_since)
    conn.commit()
    return claimed


def peek(conn: Connection, now: datetime, confirm_days: int) -> Iterator[list[Claimed]]:
    """The readers a pass at `now` would claim, in chunks, leasing none (the dry run); the
    sign-ups the pass would expire first are left out."""
    ids = list(
        conn.scalars(queries.due(conn, now).where(not_(_unconfirmed_too_long(now, confirm_days))))
    )
    for start in range(0, len(ids), PEEK_CHUNK):
        chunk = ids[start : start + PEEK_CHUNK]
        rows = conn.execute(select(*READ).where(queries.among(conn, E.c.id, chunk))).all()
        yield load(conn, rows)


def load(
    conn: Connection, rows: Sequence[Any], handed_since: datetime | None = None
) -> list[Claimed]:
    """The readers and earlier deliveries of claimed enrollments (rows of READ's columns),
    by enrollment id; with `handed_since`, what each reader was handed since then."""
    if not rows:
        return []
    handed = (
        handed_off(conn, {row.subscriber_id for row in rows}, handed_since)
        if handed_since is not None
        else None
    )
    people = {
        r.id: r
        for r in conn.execute(
            select(S.c.id, S.c.email, S.c.first_name, S.c.timezone, S.c.suppressed_at).where(
                queries.among(conn, S.c.id, {row.subscriber_id for row in rows})
            )
        )
    }
    sent, earlier = _deliveries(conn, [row.id for row in rows])
    pending = [row.id for row in rows if row.status == EnrollmentStatus.PENDING]
    confirmations: dict[int, tuple[datetime | None, str | None]] = (
        {
            row.id: (row.confirmation_sent_at, row.pending_message_id)
            for row in conn.execute(
                select(E.c.id, E.c.confirmation_sent_at, E.c.pending_message_id).where(
                    queries.among(conn, E.c.id, pending)
                )
            )
        }
        if pending
        else {}
    )
    claimed = []
    for row in sorted(rows, key=lambda r: int(r.id)):
        person = people[row.subscriber_id]
        claimed.append(
            Claimed(
                enrollment_id=row.id,
                status=row.status,
                sequence=row.sequence,
                next_lesson=row.next_lesson,
                attempts=row.attempts,
                reader=Reader(person.email, person.first_name, person.id, row.id),
                timezone=person.timezone,
                suppressed=person.suppressed_at is not None,
                sent=frozenset(sent.get(row.id, ())),
                earlier=earlier.get(row.id, {}),
                confirmation_sent_at=confirmations.get(row.id, (None, None))[0],
                pending_message_id=confirmations.get(row.id, (None, None))[1],
                pace=Pace(slower=row.slower, resumes_at=row.resumes_at),
                last_sent_at=row.last_sent_at,
                handed=None if handed is None else tuple(handed.get(row.subscriber_id, ())),
            )
        )
    return claimed


def _deliveries(
    conn: Connection, enrollment_ids: list[int]
) -> tuple[dict[int, set[str]], dict[int, dict[str, tuple[int, DeliveryStatus, str]]]]:
    """Per enrollment: the lessons sent, and (id, status, Message-ID) of each delivery not
    sent yet, by lesson."""
    sent: dict[int, set[str]] = {}
    earlier: dict[int, dict[str, tuple[int, DeliveryStatus, str]]] = {}
    for d in conn.execute(
        select(D.c.id, D.c.enrollment_id, D.c.lesson, D.c.status, D.c.message_id).where(
            queries.among(conn, D.c.enrollment_id, enrollment_ids)
        )
    ):
        if d.status == DeliveryStatus.SENT:
            sent.setdefault(d.enrollment_id, set()).add(d.lesson)
        else:
            earlier.setdefault(d.enrollment_id, {})[d.lesson] = (d.id, d.status, d.message_id)
    return sent, earlier


@contextmanager
def dispatch_lock(engine: Engine) -> Iterator[None]:
    """On SQLite, one dispatching process at a time; PostgreSQL needs no lock (SKIP LOCKED)."""
    database = sqlite_file(engine)
    if database is None:
        yield
        return
    with Path(f"{database}.dispatch.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise DispatchLocked(
                f"another drip worker (pid {holder}) is already dispatching from {database}: "
                "SQLite allows one worker at a time. Stop it, or use PostgreSQL "
                "(DRIP_DATABASE_URL) to run several workers."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
