"""The questions drip asks its database more than once, each written once.

Each function takes a session or a connection (the dispatcher runs on a bare connection, the
pages on a session) and returns rows or a `select()` to narrow further, so a page, a command
and the dispatcher asking "what is due?" cannot drift apart.

Every query for a page costs what it shows, not what the database holds: counts come from
the tally rows (drip.store.rollups) or from a range of an index, and a page of a list reads one
page of an index from either end (a cursor on the id, never OFFSET), so the last page of a
million readers is as quick as the first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Generic, Protocol, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    any_,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from drip.store.filters import Filters, delivery_log, reader_list
from drip.store.models import (
    DailyTally,
    Delivery,
    DeliveryStatus,
    DeliveryTally,
    Enrollment,
    EnrollmentStatus,
    EnrollmentTally,
    SequenceState,
    SignUpRequest,
)

E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)
STATES = cast(Table, SequenceState.__table__)

WAITING = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING)  # statuses that have a due time


def among(db: Session | Connection, column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN values`, for a batch's ids. On PostgreSQL one array parameter (`= ANY`):
    the statement's text is the same whatever the count, so psycopg keeps it converted and
    prepared, where an IN list of more than 50 parameters is converted anew at each run
    (about 6 ms for a batch of 200 readers, bench/PROFILE.md)."""
    if _dialect(db) == "postgresql":
        return cast(ColumnElement[bool], column == any_(literal(list(values), ARRAY(column.type))))
    return cast(ColumnElement[bool], column.in_(values))


def rare(db: Session | Connection, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """`condition`, which few rows meet, said so to SQLite's planner (`likelihood`). Its
    statistics (ANALYZE, `PRAGMA optimize`) keep one average per indexed column, so a value
    nearly every row has and one a few have look alike (`engagement`: engaged, quiet), and
    it reads a million rows where the index finds the few. PostgreSQL keeps each column's
    most common values and needs no hint."""
    if _dialect(db) == "sqlite":
        return cast(ColumnElement[bool], func.likelihood(condition, literal_column("0.000001")))
    return condition


def by_other_index(db: Session | Connection, column: Any) -> ColumnElement[Any]:
    """`column`, as SQLite's planner may not use an index on it (a unary `+`): neither to
    look rows up by it nor to read them in its order. For a condition most rows meet (a
    message's status `sent`, sent this week) beside one that picks out a few (a batch's
    readers), and for a GROUP BY over a few rows found by another index (the newest
    events). Without statistics (drip never runs ANALYZE) or with stale ones, SQLite would
    read every row through the first index. PostgreSQL keeps statistics: unchanged."""
    if _dialect(db) == "sqlite":
        return UnaryExpression(column, operator=custom_op("+"), type_=column.type)
    return cast(ColumnElement[Any], column)


def _dialect(db: Session | Connection) -> str:
    return (db.dialect if isinstance(db, Connection) else db.get_bind().dialect).name


def paused_sequences(db: Session | Connection) -> set[str]:
    """Slugs an operator paused: nothing in them is due until they are resumed."""
    return set(db.scalars(select(STATES.c.sequence).where(STATES.c.paused.is_(True))))


def due(
    db: Session | Connection,
    now: datetime,
    *,
    after: datetime | None = None,
) -> Select[tuple[int]]:
    """Ids of the enrollments due at `now` (and, with `after`, not before it), leaving out
    the sequences an operator paused (a claim takes them with `longest_due`)."""
    paused = sorted(paused_sequences(db))
    query = select(E.c.id).where(_due_in(E.c.status.in_(WAITING), now, paused))
    if after is not None:
        query = query.where(E.c.due_at > after)
    return query


def longest_due(
    db: Session | Connection, now: datetime, limit: int, *, skip_locked: bool = False
) -> Select[int]:
    """Ids of the `limit` enrollments due longest at `now`, outside the paused sequences, as
    a claim takes them (`skip_locked`: PostgreSQL's FOR UPDATE SKIP LOCKED on each), through
    `first_due`: `due`'s single `status IN (...)` is not one range of ix_enrollments_status_due
    in due_at order, so PostgreSQL read and sorted every due reader to take a batch: 12 ms a
    claim of 200 with 1,000 due, 289 ms with 1,000,000 due (a big import, a long outage)."""
    paused = sorted(paused_sequences(db))
    ranges = [_due_in(E.c.status == status, now, paused) for status in WAITING]
    return first_due(E, ranges, (E.c.due_at,), limit, skip_locked=skip_locked)


def _due_in(status: ColumnElement[bool], now: datetime, paused: list[str]) -> ColumnElement[bool]:
    """Enrollments of `status` due at `now`, outside the `paused` sequences: what `due`
    counts and `longest_due` claims are the same readers."""
    due = status & (E.c.due_at <= now)
    return due & E.c.sequence.not_in(paused) if paused else due


def first_due(
    table: Table,
    ranges: Sequence[ColumnElement[bool]],
    order: tuple[ColumnElement[Any], ...],
    limit: int,
    *,
    skip_locked: bool,
) -> Select[int]:
    """Ids of the first `limit` rows of `table` in `order` among `ranges`, each a condition an
    index reads in that order (one status's rows due by now, say): `limit` rows of each
    range, then the first of those. A claim's batch costs the same however many rows wait
    behind it. With `skip_locked`, each range skips the rows another worker holds (FOR UPDATE
    SKIP LOCKED); rows locked but not taken are free again when the claim commits."""
    parts = []
    for n, condition in enumerate(ranges):
        part = select(table.c.id, *order).where(condition).order_by(*order).limit(limit)
        parts.append(
            (part.with_for_update(skip_locked=True) if skip_locked else part).cte(f"due_{n}")
        )
    both = union_all(*(select(*part.c) for part in parts)).subquery("due")
    return select(both.c.id).order_by(*list(both.c)[1:]).limit(limit)  # in `order`


def count_due(db: Session | Connection, now: datetime, *, after: datetime | None = None) -> int:
    return int(
        db.scalar(select(func.count()).select_from(due(db, now, after=after).subquery())) or 0
    )


def sent_lessons(
    db: Session | Connection,
    enrollment_ids: Collection[int],
) -> dict[int, list[str]]:
    """The lessons each enrollment already got, in the order they went out (an enrollment
    with none is left out)."""
    sent: dict[int, list[str]] = {}
    if not enrollment_ids:
        return sent
    for enrollment_id, lesson in db.execute(
        select(D.c.enrollment_id, D.c.lesson)
        .where(D.c.enrollment_id.in_(list(enrollment_ids)), D.c.status == DeliveryStatus.SENT)
        .order_by(D.c.id)
    ):
        sent.setdefault(enrollment_id, []).append(lesson)
    return sent


def lessons_sent_to(db: Session | Connection, enrollment_id: int) -> list[str]:
    """`sent_lessons` of one enrollment."""
    return sent_lessons(db, [enrollment_id]).get(enrollment_id, [])


PAGE = 100  # rows per list page
T = TypeVar("T")
AnySelect = Select[*tuple[Any, ...]]


class HasId(Protocol):
    @property
    def id(self) -> int: ...


R = TypeVar("R", bound=HasId)


MAX_ID = 2**31 - 1  # the largest id an Integer primary key holds


def after_id(
    session: Session,
    statement: Select[R],
    id_column: InstrumentedAttribute[int],
    after: int,
    limit: int,
) -> tuple[list[R], int | None]:
    """The REST API's cursor pages: the rows of `statement` with an id above `after`, oldest
    first, and the cursor of the next page (None on the last). No id is above MAX_ID (ids
    are 32-bit): a larger cursor has no rows, and is not sent to the database to overflow."""
    if after >= MAX_ID:
        return [], None
    rows = list(
        session.scalars(statement.where(id_column > after).order_by(id_column).limit(limit + 1))
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


# -- counts ------------------------------------------------------------------------------------


def counts_by_sequence_and_status(db: Session | Connection) -> dict[str, Counter[str]]:
    """Readers per sequence and enrollment status (`drip status`, the admin, /metrics), from
    the tallies: a few rows, whatever the size."""
    counts: dict[str, Counter[str]] = {}
    for slug, status, n in db.execute(
        select(EnrollmentTally.sequence, EnrollmentTally.status, EnrollmentTally.enrollments).where(
            EnrollmentTally.enrollments != 0
        )
    ):
        counts.setdefault(slug, Counter())[status] = int(n)
    return counts


def confirmed_by_sequence(session: Session) -> Counter[str]:
    """Enrollments that ever confirmed, per sequence (the funnel's second step)."""
    return Counter(
        {
            slug: int(n)
            for slug, n in session.execute(
                select(EnrollmentTally.sequence, func.sum(EnrollmentTally.confirmed)).group_by(
                    EnrollmentTally.sequence
                )
            )
        }
    )


def deliveries_by_status(session: Session) -> Counter[str]:
    return Counter(
        {
            status: int(n)
            for status, n in session.execute(
                select(DeliveryTally.status, func.sum(DeliveryTally.deliveries)).group_by(
                    DeliveryTally.status
                )
            )
        }
    )


def lessons_sent(session: Session, slug: str) -> Counter[str]:
    """Readers of a sequence who got each lesson (a lesson goes once to each reader)."""
    return Counter(
        {
            lesson: int(n)
            for lesson, n in session.execute(
                select(DeliveryTally.lesson, DeliveryTally.deliveries).where(
                    DeliveryTally.sequence == slug, DeliveryTally.status == "sent"
                )
            )
        }
    )


def lessons_delivered(session: Session, slug: str) -> set[str]:
    """Names of a sequence's lessons that some reader has a delivery of, whatever its status:
    a new lesson must not take one of them, or those readers would never get it."""
    return set(
        session.scalars(
            select(DeliveryTally.lesson)
            .where(DeliveryTally.sequence == slug, DeliveryTally.deliveries != 0)
            .distinct()
        )
    )


def per_day(session: Session, first: date, last: date) -> dict[date, tuple[int, int]]:
    """(sent, failed) per UTC day from `first` to `last`, days with neither left out."""
    return {
        day: (int(sent), int(failed))
        for day, sent, failed in session.execute(
            select(DailyTally.day, DailyTally.sent, DailyTally.failed).where(
                DailyTally.day >= first, DailyTally.day <= last
            )
        )
        if sent or failed
    }


def sent_since(session: Session, moment: datetime) -> int:
    """Deliveries sent after `moment`: a range of the sent_at index (only sent rows have one)."""
    return int(
        session.scalar(select(func.count()).select_from(Delivery).where(Delivery.sent_at > moment))
        or 0
    )


# -- pages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: the newest rows (neither set), the rows older than `after`,
    those newer than `before`, or the oldest (`last`)."""

    after: int | None = None
    before: int | None = None
    last: bool = False


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, newest first, with the cursors of its neighbours (None at an
    end) and the size of the whole filtered list."""

    rows: list[T]
    total: int
    older: int | None  # pass as Cursor(after=...) for the next page
    newer: int | None  # pass as Cursor(before=...) for the previous page

    @property
    def first(self) -> bool:
        return self.newer is None


def keyset(
    session: Session,
    statement: AnySelect,
    key: Any,
    key_of: Callable[[Any], int],
    cursor: Cursor,
    total: int,
    size: int = PAGE,
) -> Page[Any]:
    """One page of `statement` ordered by `key` descending, read from whichever end the
    cursor names, so each page reads `size` index entries, the last as cheap as the first."""
    ascending = cursor.before is not None or cursor.last
    if cursor.before is not None:
        statement = statement.where(key > cursor.before)
    elif cursor.after is not None and not cursor.last:
        statement = statement.where(key < cursor.after)
    rows = list(
        session.execute(
            statement.order_by(key.asc() if ascending else key.desc()).limit(size + 1)
        ).all()
    )
    more = len(rows) > size
    rows = rows[:size]
    if ascending:
        rows.reverse()
        older, newer = cursor.before is not None, more
    else:
        older, newer = more, cursor.after is not None
    return Page(
        rows,
        total,
        older=key_of(rows[-1]) if older and rows else None,
        newer=key_of(rows[0]) if newer and rows else None,
    )


def _count(session: Session, statement: AnySelect) -> int:
    return int(
        session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    )


def _total(
    session: Session, statement: AnySelect, filters: Filters, tally: Any, column: Any
) -> int:
    """The size of a filtered list: the sum of its tally rows, or, for an address search,
    a tag or a segment, a count of what it matched (as large as the answer, not the table)."""
    if filters.address or filters.tag or filters.segment or filters.engagement:
        return _count(session, statement)
    total = select(func.coalesce(func.sum(column), 0))
    if filters.status:
        total = total.where(tally.status == filters.status)
    if filters.sequence:
        total = total.where(tally.sequence == filters.sequence)
    return int(session.scalar(total) or 0)


def readers_page(session: Session, cursor: Cursor, filters: Filters, size: int = PAGE) -> Page[Any]:
    """A page of enrollments, rows of (Enrollment, Subscriber), newest first."""
    statement = reader_list(session, filters)
    total = _total(session, statement, filters, EnrollmentTally, EnrollmentTally.enrollments)
    return keyset(
        session, statement, Enrollment.id, lambda row: int(row[0].id), cursor, total, size
    )


def deliveries_page(
    session: Session, cursor: Cursor, filters: Filters, size: int = PAGE
) -> Page[Any]:
    """A page of the delivery log, rows of (Delivery, Enrollment, Subscriber), newest first."""
    filters = replace(filters, tag="", segment="", engagement="", segment_conditions=())
    statement = delivery_log(session, filters)
    total = _total(session, statement, filters, DeliveryTally, DeliveryTally.deliveries)
    return keyset(session, statement, Delivery.id, lambda row: int(row[0].id), cursor, total, size)


def sign_ups_waiting_by_sequence(session: Session) -> dict[str, int]:
    """Queued sign-ups per sequence: those of a broken sequence wait until it is fixed."""
    return {
        str(slug): int(number)
        for slug, number in session.execute(
            select(SignUpRequest.sequence, func.count()).group_by(SignUpRequest.sequence)
        )
    }
