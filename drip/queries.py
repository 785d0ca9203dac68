"""The questions drip asks its database more than once, each written once.

Each function takes a session or a connection (the dispatcher runs on a bare connection, the
pages on a session) and returns rows or a `select()` to narrow further, so a page, a command
and the dispatcher asking "what is due?" cannot drift apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Select, Table, func, select
from sqlalchemy.orm import Session

from drip.models import Delivery, DeliveryStatus, Enrollment, EnrollmentStatus, SequenceState

E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)
STATES = cast(Table, SequenceState.__table__)

WAITING = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING)  # statuses that have a due time


def paused_sequences(db: Session | Connection) -> set[str]:
    """Slugs an operator paused: nothing in them is due until they are resumed."""
    return set(db.scalars(select(STATES.c.sequence).where(STATES.c.paused.is_(True))))


def due(db: Session | Connection, now: datetime, *, after: datetime | None = None,
        limit: int | None = None) -> Select[tuple[int]]:
    """Ids of the enrollments due at `now` (and, with `after`, not before it), leaving out
    the sequences an operator paused; with `limit`, the longest-waiting first."""
    query = select(E.c.id).where(E.c.status.in_(WAITING), E.c.due_at <= now)
    if after is not None:
        query = query.where(E.c.due_at > after)
    paused = paused_sequences(db)
    if paused:
        query = query.where(E.c.sequence.not_in(sorted(paused)))
    if limit is not None:
        query = query.order_by(E.c.due_at).limit(limit)
    return query


def count_due(db: Session | Connection, now: datetime, *, after: datetime | None = None) -> int:
    return int(db.scalar(select(func.count()).select_from(
        due(db, now, after=after).subquery())) or 0)


def sent_lessons(db: Session | Connection, enrollment_ids: Collection[int],
                 ) -> dict[int, list[str]]:
    """The lessons each enrollment already got, in the order they went out (an enrollment
    with none is left out)."""
    sent: dict[int, list[str]] = {}
    if not enrollment_ids:
        return sent
    for enrollment_id, lesson in db.execute(
            select(D.c.enrollment_id, D.c.lesson).where(
                D.c.enrollment_id.in_(list(enrollment_ids)), D.c.status == DeliveryStatus.SENT)
            .order_by(D.c.id)):
        sent.setdefault(enrollment_id, []).append(lesson)
    return sent


def counts_by_sequence_and_status(db: Session | Connection) -> dict[str, Counter[str]]:
    """Readers per sequence and enrollment status (`drip status`, the admin, /metrics)."""
    counts: dict[str, Counter[str]] = {}
    for slug, status, count in db.execute(
            select(E.c.sequence, E.c.status, func.count()).group_by(E.c.sequence, E.c.status)):
        counts.setdefault(slug, Counter())[str(status)] = int(count)
    return counts


def lessons_sent_to(db: Session | Connection, enrollment_id: int) -> list[str]:
    """`sent_lessons` of one enrollment."""
    return sent_lessons(db, [enrollment_id]).get(enrollment_id, [])
