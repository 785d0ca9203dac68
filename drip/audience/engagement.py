"""Engagement: is a reader still reading? Judged by what a person does, never by opens.

Apple Mail opens every message it receives (Mail Privacy Protection) and scanners fetch
every pixel, so an open says nothing about a person; Gmail and Yahoo judge a sender by
complaints and engagement, so mailing people who stopped reading gets an author's domain
filtered. The actions that count: a click counted as a person's (drip.audience.clicks sets
scanners apart), a reply, a PDF downloaded in a browser, a pace choice, a `tag_link`
pressed, a goal reached (`exit_when`), a course confirmed or rejoined, and "keep them
coming" pressed.

- **engaged**: an action within the last N deliveries (lessons and broadcast copies);
- **quiet**: none across N deliveries: one re-permission email goes out
  (drip.dispatch.repermission) unless every course of theirs says `repermission: false`;
- **gone**: no answer M days after that email: no more broadcasts or offers, and their
  courses pause. Never unsubscribed: any action brings them back, courses and all.

N and M are site.yaml's `engagement: {quiet_after, gone_after_days}` (6 and 30).

The state is kept on the reader (`subscribers.engagement`), so lists filter on an index:
a click changes it at once (`mark_engaged`), and each dispatch pass `sweep`s the rest (the
timeline's new actions, the readers sent something since the last sweep, the unanswered).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    and_,
    case,
    func,
    insert,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql import Subquery

from drip.audience.controls import pause, resume
from drip.content.sequences import Library
from drip.store.models import (
    BroadcastRecipient,
    Delivery,
    Engagement,
    EngagementDay,
    EngagementSweep,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    Subscriber,
)
from drip.store.queries import by_other_index, rare

# The timeline's kinds that are a person acting. Other helpers' kinds join by name: a reply
# (REPLIED) and every pace choice (PACE_*), as they come to exist.
ENGAGING: frozenset[EventKind] = frozenset(
    {
        EventKind.CLICKED,
        EventKind.EXITED,
        EventKind.KEPT,
        EventKind.CONFIRMED,
        EventKind.REJOINED,
        EventKind.REPLIED,
        *(kind for kind in EventKind if kind.name.startswith("PACE_")),
    }
)
# Tags a reader gave themselves: a `tag_link` pressed, a PDF downloaded in a browser (an
# operator's or an import's tags are not the reader's doing, nor a scanner's download).
READERS_OWN_TAGS = ("%(link in %", "%(downloaded the PDF)")
GONE_REASON = "no answer to “Still want these?”"
SWEEP = "engagement"
# Actions read again behind the cursor, as drip.integrations.hooks reads its events: on
# PostgreSQL a transaction that took its event's id before a sweep read the last one may
# commit after that sweep. Up to LATE ids back, of actions from up to LATE_AFTER before the
# last sweep, never from before the first sweep (`started_id`); read again, an action
# counts only if it is later than the last one counted for its reader: none counts twice.
LATE = 1_000
LATE_AFTER = timedelta(hours=1)
OVERLAP = timedelta(hours=1)  # deliveries committed by another worker just before a sweep
ASKED = (EnrollmentStatus.ACTIVE, EnrollmentStatus.COMPLETED)  # who gets the question


def is_engaging() -> ColumnElement[bool]:
    """The timeline rows that are the reader acting (for the sweep and for tests)."""
    return or_(
        Event.kind.in_(sorted(ENGAGING)),
        and_(
            Event.kind == EventKind.TAGGED,
            or_(*(Event.detail.like(pattern) for pattern in READERS_OWN_TAGS)),
        ),
    )


def mark_engaged(
    session: Session, subscriber: Subscriber, library: Library, at: datetime, now: datetime
) -> bool:
    """The reader acted at `at`: engaged, the question answered, and a gone reader's
    paused courses go on. True if their state changed. The caller commits."""
    if subscriber.engaged_at is None or subscriber.engaged_at < at:
        subscriber.engaged_at = at
    was = subscriber.engagement
    subscriber.engagement = Engagement.ENGAGED
    subscriber.repermission_at = None
    if was == Engagement.GONE and subscriber.suppressed_at is None:
        for enrollment in subscriber.enrollments:
            if enrollment.status == EnrollmentStatus.PAUSED and (
                enrollment.paused_reason == GONE_REASON and library.get(enrollment.sequence)
            ):
                resume(session, library, enrollment, now)
    return was != Engagement.ENGAGED


def keep(session: Session, library: Library, enrollment: Enrollment, now: datetime) -> None:
    """ "Keep them coming" pressed (from any email, however old): engaged again."""
    mark_engaged(session, enrollment.subscriber, library, now, now)
    session.add(
        Event(
            subscriber_id=enrollment.subscriber_id,
            enrollment_id=enrollment.id,
            kind=EventKind.KEPT,
            at=now,
            detail="pressed “Keep them coming”",
        )
    )


@dataclass
class Swept:
    """What one sweep changed, for the pass's log and the tests."""

    engaged: int = 0
    quiet: int = 0
    gone: int = 0


def sweep(session: Session, library: Library, now: datetime) -> Swept:
    """Bring every reader's state up to `now`, reading only what changed since the last
    sweep; commits. The first sweep starts from now (nothing before it is re-read)."""
    cursor = _take_cursor(session, now)
    swept = Swept()
    if cursor is None:
        return swept  # another worker is sweeping: the next pass sweeps
    swept.engaged = _actions(session, library, cursor, now)
    rules = library.engagement
    swept.quiet = _gone_quiet(session, rules.quiet_after, cursor.swept_at or now, now)
    swept.gone = _gone(session, now - timedelta(days=rules.gone_after_days), now)
    cursor.swept_at = max(cursor.swept_at or now, now)
    _day(session, now)
    session.commit()
    return swept


def _take_cursor(session: Session, now: datetime) -> EngagementSweep | None:
    """The sweep's row, locked for this worker (PostgreSQL: a second worker skips it, so two
    never mark the same reader twice); made at the first sweep. None: another has it."""
    taken = select(EngagementSweep).where(EngagementSweep.name == SWEEP)
    cursor = session.scalar(taken.with_for_update(skip_locked=True))
    if cursor is not None or session.scalar(select(EngagementSweep.name)) is not None:
        return cursor
    start = session.scalar(select(func.max(Event.id))) or 0
    try:
        with session.begin_nested():
            session.add(EngagementSweep(name=SWEEP, event_id=start, swept_at=now, started_id=start))
    except IntegrityError:
        return None  # another worker made it this instant
    return session.scalar(taken.with_for_update(skip_locked=True))


def _actions(session: Session, library: Library, cursor: EngagementSweep, now: datetime) -> int:
    """The timeline's actions since the cursor (and the `LATE` before it, for those
    committed late): each reader's latest counts. How many readers' state changed.

    Set-based, whatever the number of readers: after a broadcast's clicks, or a worker that
    was down for a day, one reader at a time cost two statements each and held every reader
    in the session. Only gone readers are loaded, for their courses to go on (rare)."""
    read_before = cursor.event_id
    acted = _acted(session, cursor, now)
    if acted is None:
        return 0
    later = or_(Subscriber.engaged_at.is_(None), Subscriber.engaged_at < acted.c.at)
    news = or_(acted.c.newest > read_before, later)  # read before: only if it came late
    gone = session.execute(
        select(Subscriber, acted.c.at)
        .join(acted, acted.c.subscriber_id == Subscriber.id)
        .where(Subscriber.engagement == Engagement.GONE, news)
        .options(selectinload(Subscriber.enrollments))
    ).all()
    changed = sum(mark_engaged(session, s, library, at, now) for s, at in gone)
    session.flush()
    engaged = Subscriber.engagement == Engagement.ENGAGED

    def engage(readers: ColumnElement[bool]) -> int:
        result = session.execute(
            update(Subscriber)
            .where(Subscriber.id == acted.c.subscriber_id, readers)
            .values(
                engaged_at=case((later, acted.c.at), else_=Subscriber.engaged_at),
                engagement=Engagement.ENGAGED,
                repermission_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], result).rowcount

    changed += engage(and_(~engaged, news))  # quiet readers, engaged again
    # An engaged reader's row is written only where something in it changes.
    engage(and_(engaged, news, or_(later, Subscriber.repermission_at.is_not(None))))
    return changed


def _acted(session: Session, cursor: EngagementSweep, now: datetime) -> Subquery | None:
    """Each reader's latest action (`at`) and newest event id (`newest`) among those to
    read, or None if there are none; the cursor moves past the last event read either way.
    The last id is read first: an event inserted meanwhile waits for the next sweep."""
    floor = max(cursor.event_id - LATE, cursor.started_id)
    unread = or_(Event.id > cursor.event_id, Event.at >= (cursor.swept_at or now) - LATE_AFTER)
    last, acting = session.execute(
        select(func.max(Event.id), func.max(case((and_(is_engaging(), unread), Event.id)))).where(
            Event.id > floor
        )
    ).one()
    cursor.event_id = max(cursor.event_id, last or 0)
    if acting is None:  # nothing but other steps
        return None
    # Read by the ids' range: grouped by an index on the reader, SQLite would read the whole
    # timeline in that index's order to spare itself a sort (`by_other_index`).
    reader = by_other_index(session, Event.subscriber_id)
    return (
        select(
            reader.label("subscriber_id"),
            func.max(Event.at).label("at"),
            func.max(Event.id).label("newest"),
        )
        .where(Event.id > floor, Event.id <= last, unread, is_engaging())
        .group_by(reader)
        .subquery("acted")
    )


def deliveries_since_action() -> ColumnElement[int]:
    """How many lessons and broadcast copies a reader was sent since their last action (all
    of them, for a reader who never acted: a sign-up's welcome counts)."""
    lessons = (
        select(func.count(Delivery.id))
        .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
        .where(Enrollment.subscriber_id == Subscriber.id, _after_action(Delivery.sent_at))
        .scalar_subquery()
    )
    copies = (
        select(func.count(BroadcastRecipient.id))
        .where(
            BroadcastRecipient.subscriber_id == Subscriber.id,
            _after_action(BroadcastRecipient.sent_at),
        )
        .scalar_subquery()
    )
    return lessons + copies


def _after_action(sent_at: ColumnElement[datetime | None] | Any) -> ColumnElement[bool]:
    """Sent after the reader's last action. (No `coalesce` with the sign-up time: on SQLite
    the times are text, and the hand-off's fast path writes them without microseconds, so
    a welcome sent the instant of sign-up would compare as earlier.)"""
    return or_(
        and_(Subscriber.engaged_at.is_(None), sent_at.is_not(None)),
        sent_at > Subscriber.engaged_at,
    )


def _gone_quiet(session: Session, quiet_after: int, last_sweep: datetime, now: datetime) -> int:
    """Engaged readers sent something since the last sweep whose last N messages had no
    answer: quiet now."""
    after = last_sweep - OVERLAP
    recent = union(
        select(Enrollment.subscriber_id)
        .join(Delivery, Delivery.enrollment_id == Enrollment.id)
        .where(Delivery.sent_at > after),
        select(BroadcastRecipient.subscriber_id).where(BroadcastRecipient.sent_at > after),
    ).subquery()
    quiet = session.scalars(
        select(Subscriber)
        .where(
            Subscriber.engagement == Engagement.ENGAGED,
            Subscriber.id.in_(select(recent.c[0])),
            deliveries_since_action() >= quiet_after,
        )
        .options(selectinload(Subscriber.enrollments))  # for `_notes`: not one read a reader
    ).all()
    for subscriber in quiet:
        subscriber.engagement = Engagement.QUIET
    detail = f"no click, reply or other action across {quiet_after} emails"
    _notes(session, quiet, EventKind.WENT_QUIET, now, detail)
    return len(quiet)


def _gone(session: Session, asked_before: datetime, now: datetime) -> int:
    """Quiet readers who did not answer the question in time: gone, their courses paused."""
    gone = session.scalars(
        select(Subscriber)
        .where(
            rare(session, Subscriber.engagement == Engagement.QUIET),
            Subscriber.repermission_at <= asked_before,
        )
        .options(selectinload(Subscriber.enrollments))
    ).all()
    detail = "no answer to “Still want these?”: courses paused, no broadcasts or offers"
    _notes(session, gone, EventKind.GONE, now, detail)  # before the courses' own steps
    for subscriber in gone:
        subscriber.engagement = Engagement.GONE
        for enrollment in subscriber.enrollments:
            pause(session, enrollment, now, GONE_REASON)
    return len(gone)


def _notes(
    session: Session, subscribers: Sequence[Subscriber], kind: EventKind, now: datetime, detail: str
) -> None:
    """The step on the timeline of each course each reader is in (a timeline is a course's),
    in one statement however many readers (the ORM would insert them one by one on SQLite,
    to read back each id)."""
    rows = [
        {"subscriber_id": s.id, "enrollment_id": course, "kind": kind, "at": now, "detail": detail}
        for s in subscribers
        for course in _courses(s)
    ]
    if rows:
        session.execute(insert(Event), rows)


def _courses(subscriber: Subscriber) -> list[int | None]:
    """The enrollments whose timelines show a step of the reader's; None: the reader's own."""
    ids: list[int | None] = [
        e.id for e in subscriber.enrollments if e.status in (*ASKED, EnrollmentStatus.PAUSED)
    ]
    return ids or [None]


def _day(session: Session, now: datetime) -> None:
    """The day's share of each state per course, written at the day's first sweep."""
    day = now.date()
    if session.scalar(select(EngagementDay.day).where(EngagementDay.day == day).limit(1)):
        return
    rows = session.execute(
        select(Enrollment.sequence, Subscriber.engagement, func.count())
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
        .where(Enrollment.status.in_([*ASKED, EnrollmentStatus.PAUSED]))
        .group_by(Enrollment.sequence, Subscriber.engagement)
    ).all()
    for sequence, state, readers in rows:
        session.add(EngagementDay(day=day, sequence=sequence, state=str(state), readers=readers))
    if not rows:  # a day with no readers still counts as written
        session.add(EngagementDay(day=day, sequence="", state="", readers=0))


def to_ask(session: Session, library: Library, limit: int) -> list[Enrollment]:
    """Quiet readers not yet asked "Still want these?": for each, the enrollment the email
    is sent for (their latest in a course that asks), at most `limit`."""
    asking = sorted(slug for slug, s in library.sequences.items() if s.repermission)
    latest = (
        select(func.max(Enrollment.id))
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
        .where(
            rare(session, Subscriber.engagement == Engagement.QUIET),
            Subscriber.repermission_at.is_(None),
            Subscriber.suppressed_at.is_(None),
            Enrollment.sequence.in_(asking),
            Enrollment.status.in_(ASKED),
        )
        .group_by(Enrollment.subscriber_id)
        .limit(limit)
    )
    return list(session.scalars(select(Enrollment).where(Enrollment.id.in_(latest))))


def claim_question(session: Session, subscriber_id: int, now: datetime) -> bool:
    """Take the reader's question for this worker (one email, ever, per quiet spell): True
    if it is ours to send. The caller commits before the hand-off."""
    taken = session.execute(
        update(Subscriber)
        .where(
            Subscriber.id == subscriber_id,
            Subscriber.engagement == Engagement.QUIET,
            Subscriber.repermission_at.is_(None),
        )
        .values(repermission_at=now)
        .execution_options(synchronize_session=False)
    )
    return getattr(taken, "rowcount", 0) == 1


def state_of(session: Session, subscriber_id: int) -> Engagement | None:
    return session.scalar(select(Subscriber.engagement).where(Subscriber.id == subscriber_id))


@dataclass(frozen=True)
class DayShare:
    """One course's readers on one day: the share in each state (0 to 1), and how many."""

    day: date
    engaged: float
    quiet: float
    gone: float
    readers: int


def shares(session: Session, now: datetime, days: int = 30) -> dict[str, list[DayShare]]:
    """Per course, the share of its readers in each state on each day recorded over the last
    `days` days (the dashboard's chart): a range of `engagement_days`' key."""
    rows = session.execute(
        select(
            EngagementDay.sequence, EngagementDay.day, EngagementDay.state, EngagementDay.readers
        )
        .where(
            EngagementDay.day > (now - timedelta(days=days)).date(), EngagementDay.sequence != ""
        )
        .order_by(EngagementDay.sequence, EngagementDay.day)
    ).all()
    counts: dict[str, dict[date, dict[str, int]]] = {}
    for sequence, day, state, readers in rows:
        counts.setdefault(sequence, {}).setdefault(day, {})[state] = readers
    found: dict[str, list[DayShare]] = {}
    for sequence, by_day in counts.items():
        for day, states in by_day.items():
            total = sum(states.values())
            share = {state: number / (total or 1) for state, number in states.items()}
            found.setdefault(sequence, []).append(
                DayShare(
                    day,
                    engaged=share.get(Engagement.ENGAGED.value, 0.0),
                    quiet=share.get(Engagement.QUIET.value, 0.0),
                    gone=share.get(Engagement.GONE.value, 0.0),
                    readers=total,
                )
            )
    return found
