"""What the admin dashboard shows: counts, per-day series, funnels, and for each enrollment
one line saying why its next lesson has not gone out yet.

Plain functions of a session and `now` (and the content where it matters), so tests check
the numbers without a browser and the pages only lay them out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drip.audience.clicks import readers_who_clicked
from drip.content.lessons import VARIABLE
from drip.content.schedule import delay_ends, into_window, reader_zone
from drip.content.sequences import Lesson, Sequence
from drip.store import lesson_counts, queries
from drip.store.models import (
    OUTCOME_UNKNOWN,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    SignUpRequest,
    WorkerHeartbeat,
)
from drip.store.queries import count_due

ALIVE_INTERVALS = 3  # the scheduler counts as alive while its last pass is this many intervals old


@dataclass(frozen=True)
class Overview:
    sent_hour: int
    sent_day: int
    retrying: int
    failed: int
    # sent in the last 24 h after an attempt whose outcome was unknown (the relay dropped the
    # connection after DATA, or a worker died): each of those readers may have it twice
    unknown_day: int
    due_now: int
    due_day: int
    last_pass_at: datetime | None
    last_pass_sent: int
    last_pass_failed: int
    last_pass_age: timedelta | None
    scheduler_alive: bool
    signups_waiting: int  # accepted by the web, not yet taken in by the worker
    signups_held: list[tuple[str, int]]  # (why, how many) of those that cannot be taken in


@dataclass(frozen=True)
class DayCount:
    day: date
    sent: int
    failed: int


@dataclass(frozen=True)
class FunnelStep:
    """One bar: `share` is its percentage of the bar it is measured against, `kind` "left"
    or "clicked" for the steps that are not a stage of the course."""

    label: str
    count: int
    share: str | None = None
    kind: str = ""


def percent(part: int, whole: int) -> str | None:
    return f"{round(100 * part / whole)}%" if whole else None


@dataclass(frozen=True)
class Funnel:
    slug: str
    title: str
    steps: tuple[FunnelStep, ...]


@dataclass(frozen=True)
class Why:
    """The answer to "why hasn't the next lesson gone out?" for one enrollment.

    `late` means the lesson's own time (the previous send plus its delay) has passed and it
    has still not gone out; `reason` says what holds it.
    """

    due_at: datetime | None
    late: bool
    reason: str
    delay_ended: datetime | None = None  # the previous send plus the delay, where known

    def __str__(self) -> str:
        return self.reason


def last_pass(session: Session) -> WorkerHeartbeat | None:
    return session.scalars(
        select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_pass_at.desc()).limit(1)
    ).first()


def scheduler_alive(last_pass_at: datetime | None, now: datetime, interval_seconds: int) -> bool:
    if last_pass_at is None:
        return False
    return now - last_pass_at < timedelta(seconds=ALIVE_INTERVALS * interval_seconds)


def _count(session: Session, query: Any) -> int:
    return int(session.scalar(query) or 0)


def overview(session: Session, now: datetime, interval_seconds: int) -> Overview:
    """The dashboard's numbers: tallies for the totals, index ranges for the recent and the
    due (each costs what it counts, not what the database holds)."""
    by_status = queries.deliveries_by_status(session)
    beat = last_pass(session)
    queued = session.execute(
        select(SignUpRequest.problem, func.count()).group_by(SignUpRequest.problem)
    ).all()
    return Overview(
        sent_hour=queries.sent_since(session, now - timedelta(hours=1)),
        sent_day=queries.sent_since(session, now - timedelta(days=1)),
        retrying=by_status[DeliveryStatus.RETRYING],
        unknown_day=_count(
            session,
            select(func.count())
            .select_from(Delivery)
            .where(
                Delivery.sent_at > now - timedelta(days=1),
                Delivery.last_error.startswith(OUTCOME_UNKNOWN),
            ),
        ),
        failed=by_status[DeliveryStatus.FAILED],
        due_now=count_due(session, now),
        due_day=count_due(session, now + timedelta(days=1), after=now),
        last_pass_at=beat.last_pass_at if beat else None,
        last_pass_sent=beat.last_pass_sent if beat else 0,
        last_pass_failed=beat.last_pass_failed if beat else 0,
        last_pass_age=now - beat.last_pass_at if beat else None,
        scheduler_alive=scheduler_alive(beat.last_pass_at if beat else None, now, interval_seconds),
        signups_waiting=sum(count for _, count in queued),
        signups_held=sorted((why, count) for why, count in queued if why),
    )


def daily(session: Session, now: datetime, days: int = 30) -> list[DayCount]:
    """Sends and failures per UTC day, oldest first, for the `days` days ending today."""
    first = now.astimezone(UTC).date() - timedelta(days=days - 1)
    found = queries.per_day(session, first, first + timedelta(days=days - 1))
    return [
        DayCount(day, *found.get(day, (0, 0)))
        for day in (first + timedelta(days=i) for i in range(days))
    ]


def plain_subject(lesson: Lesson) -> str:
    """The subject with each variable shown as its default (or its name): a label, not mail."""
    return VARIABLE.sub(lambda m: m["default"] or m["name"], lesson.subject)


def funnel(session: Session, sequence: Sequence) -> Funnel:
    """Readers who reached each step of a sequence, from sign-up to the last lesson, and
    beside them those who clicked a link (with `track_links`) and those who left."""
    statuses = queries.counts_by_sequence_and_status(session).get(sequence.slug, Counter())
    reached = queries.lessons_sent(session, sequence.slug)
    signed_up = sum(statuses.values())
    clicked = readers_who_clicked(session, sequence.slug)
    stages = [
        ("Signed up", signed_up, ""),
        ("Confirmed", queries.confirmed_by_sequence(session)[sequence.slug], ""),
        *(
            (f"{lesson.number}. {plain_subject(lesson)}", reached[lesson.key], "")
            for lesson in sequence.lessons
        ),
        ("Completed", statuses[EnrollmentStatus.COMPLETED], ""),
        *((("Clicked a link", clicked, "clicked"),) if sequence.track_links or clicked else ()),
        ("Unsubscribed", statuses[EnrollmentStatus.UNSUBSCRIBED], "left"),
    ]
    steps = [
        FunnelStep(label, number, None if i == 0 else percent(number, signed_up), kind)
        for i, (label, number, kind) in enumerate(stages)
    ]
    return Funnel(sequence.slug, sequence.title, tuple(steps))


@dataclass(frozen=True)
class LessonReach:
    """One lesson of a sequence on its admin page: who got it, who kept on from the lesson
    before, who left while it was next, who is due it soon."""

    lesson: Lesson
    got: int
    kept_on: str | None  # of those who got the lesson before, the share who got this one
    left_before: int  # unsubscribed while this lesson was their next
    due_day: int
    due_week: int


def lesson_reach(session: Session, sequence: Sequence, now: datetime) -> list[LessonReach]:
    """Per lesson: got it, kept on, left before it, due in a day and a week (where readers
    drop off); from the tallies and index ranges."""
    got = queries.lessons_sent(session, sequence.slug)
    left = lesson_counts.left_before_lesson(session, sequence.slug)
    day = lesson_counts.due_by_lesson(session, sequence.slug, now, now + timedelta(days=1))
    week = lesson_counts.due_by_lesson(session, sequence.slug, now, now + timedelta(days=7))
    rows = []
    before: int | None = None
    for lesson in sequence.lessons:
        number = got[lesson.key]
        rows.append(
            LessonReach(
                lesson,
                number,
                percent(number, before) if before is not None else None,
                left[lesson.key],
                day[lesson.key],
                week[lesson.key],
            )
        )
        before = number
    return rows


def drop_off(reach: list[LessonReach]) -> list[FunnelStep]:
    """The lessons as bars: readers who got each, and the share of the lesson before."""
    return [
        FunnelStep(f"{r.lesson.number}. {plain_subject(r.lesson)}", r.got, r.kept_on) for r in reach
    ]


def when(moment: datetime, now: datetime) -> str:
    """`2026-03-02 14:00 UTC (in 2 h)`: exact for the log, relative for the eye."""
    seconds = (moment - now).total_seconds()
    size = abs(seconds)
    if size < 60:
        relative = "now"
    else:
        amount = (
            f"{round(size / 60)} min"
            if size < 3600
            else f"{round(size / 3600)} h"
            if size < 2 * 86400
            else f"{round(size / 86400)} d"
        )
        relative = f"in {amount}" if seconds > 0 else f"{amount} ago"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({relative})"


def _natural_time(enrollment: Enrollment, lesson: Lesson, sequence: Sequence) -> datetime | None:
    """When the lesson would go out by its delay alone, before the send window moves it:
    the dispatcher's own rule (drip.content.schedule), so the two agree across a clock change.
    At the reader's pace: slower counts the delay twice, a pause holds it to its date."""
    after = enrollment.last_sent_at or enrollment.confirmed_at
    if after is None:
        return None
    zone = reader_zone(enrollment.subscriber.timezone, sequence.timezone)
    natural = delay_ends(after, lesson.delay, zone)
    if enrollment.slower and not lesson.delay.immediate:
        natural = delay_ends(natural, lesson.delay, zone)
    if enrollment.paused_since is not None and enrollment.resumes_at is not None:
        natural = max(natural, enrollment.resumes_at)
    return natural


def _window(sequence: Sequence, zone_name: str) -> str:
    return (
        f"{sequence.window.start:%H:%M}–{sequence.window.end:%H:%M} "
        f"{reader_zone(zone_name, sequence.timezone).key}"
    )


def why_waiting(
    enrollment: Enrollment,
    sequence: Sequence | None,
    *,
    sequence_paused: bool,
    now: datetime,
    alive: bool = True,
) -> Why:
    """One line: when the next message is due and, if it is late, what holds it."""
    stopped = _stopped(enrollment, now)
    if stopped is not None:
        return stopped
    lesson = (
        sequence.lesson(enrollment.next_lesson) if sequence and enrollment.next_lesson else None
    )
    what = (
        f"Lesson “{lesson.subject}”"
        if lesson
        else f"Lesson {enrollment.next_lesson}"
        if enrollment.next_lesson
        else "The confirmation email"
    )
    held = _not_yet(enrollment, what, now)
    if held is not None:
        return held
    due = enrollment.due_at
    if sequence is None:
        return Why(
            due,
            True,
            f"Held: the sequence “{enrollment.sequence}” has problems or no longer "
            "exists; the Sequences page says what to fix.",
        )
    if lesson is None and "next for this reader, is no longer in" in (enrollment.last_error or ""):
        return Why(due, True, f"Held: {enrollment.last_error}.")
    if due is None:
        return Why(None, False, "Nothing is scheduled.")
    natural = _natural_time(enrollment, lesson, sequence) if lesson else None
    if sequence_paused:
        return Why(
            due,
            (natural or due) <= now,
            f"{what} due {when(due, now)}, but the sequence is paused by "
            "an operator: nothing in it goes out until it is resumed.",
            natural,
        )
    return _scheduled(enrollment, sequence, what, due, natural, now=now, alive=alive)


def _stopped(enrollment: Enrollment, now: datetime) -> Why | None:
    """Why nothing more goes out at all: the course is over, left, expired or suppressed."""
    subscriber = enrollment.subscriber
    status = enrollment.status
    if status == EnrollmentStatus.COMPLETED:
        done = f" {when(enrollment.completed_at, now)}" if enrollment.completed_at else ""
        return Why(None, False, f"Completed{done}: every lesson has gone out.")
    if status == EnrollmentStatus.UNSUBSCRIBED:
        left = f" {when(enrollment.unsubscribed_at, now)}" if enrollment.unsubscribed_at else ""
        return Why(None, False, f"Unsubscribed{left}: nothing more goes out.")
    if status == EnrollmentStatus.EXPIRED:
        return Why(
            None,
            False,
            "Never confirmed, so the sign-up expired: nothing goes out "
            "unless the reader signs up again.",
        )
    if status == EnrollmentStatus.SUPPRESSED or subscriber.suppressed_at is not None:
        why = subscriber.suppressed_reason or enrollment.last_error or "blocked by an operator"
        return Why(None, True, f"Suppressed: {why}. Nothing goes out to this address.")
    return None


def _not_yet(enrollment: Enrollment, what: str, now: datetime) -> Why | None:
    """Why nothing is due yet: paused, or waiting for the reader to confirm."""
    if enrollment.status == EnrollmentStatus.PAUSED:
        return Why(
            None,
            True,
            f"Paused: {enrollment.paused_reason or 'by an operator'}. "
            f"{what} goes out when the enrollment is resumed.",
        )
    if enrollment.status == EnrollmentStatus.PENDING and enrollment.due_at is None:
        sent = (
            f" (the email went out {when(enrollment.confirmation_sent_at, now)})"
            if enrollment.confirmation_sent_at
            else ""
        )
        return Why(
            None,
            False,
            f"Waiting for confirmation{sent}: lessons start once the reader clicks the link.",
        )
    return None


def _scheduled(
    enrollment: Enrollment,
    sequence: Sequence,
    what: str,
    due: datetime,
    natural: datetime | None,
    *,
    now: datetime,
    alive: bool,
) -> Why:
    """A message with a due time: retrying, being sent, waiting for it (or for the send
    window), or overdue."""
    if enrollment.attempts and enrollment.last_error:
        return Why(
            due,
            True,
            f"Retrying after an SMTP error: {enrollment.last_error} "
            f"(attempt {enrollment.attempts + 1} due {when(due, now)}).",
            natural,
        )
    if enrollment.lease_owner and due > now:
        return Why(
            due,
            (natural or due) <= now,
            f"{what} is being sent by worker {enrollment.lease_owner}; "
            f"if it stopped, the reader falls due again {when(due, now)}.",
            natural,
        )
    if due > now:
        timezone = enrollment.subscriber.timezone
        zone = reader_zone(timezone, sequence.timezone)
        if (
            natural is not None
            and natural < due
            and into_window(natural, sequence.window, zone) >= due
        ):
            return Why(
                due,
                natural <= now,
                f"{what} due {when(due, now)}: its delay ended {when(natural, now)}, "
                f"outside the send window ({_window(sequence, timezone)}).",
                natural,
            )
        return Why(due, False, f"{what} due {when(due, now)}.", natural)
    tail = (
        "it goes out with the next dispatch pass."
        if alive
        else "but the scheduler is not running: start `drip worker` or `drip serve`."
    )
    return Why(due, True, f"{what} was due {when(due, now)}; {tail}", natural)


def axis_ticks(maximum: int, count: int = 4) -> list[int]:
    """Round tick values from 0 to at least `maximum` (1, 2 or 5 times a power of ten apart),
    so a chart's axis reads 0, 5, 10, 15 rather than 0, 3.75, 7.5."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    magnitude = 1
    while magnitude * 10 <= raw:
        magnitude *= 10
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    top = -(-maximum // step) * step
    return list(range(0, top + 1, step))
