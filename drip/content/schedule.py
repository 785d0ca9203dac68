"""When a lesson is due: the previous send plus the lesson's delay, moved into the window.

Delays in days and weeks count calendar days on the reader's wall clock, so a lesson sent at
09:10 lands at 09:10 two days later even across a daylight-saving change; the time is then
moved into the sequence's send window (its hours and weekdays) in the reader's own zone.

The reader's pace (`Pace`, chosen from a lesson's footer) bends it: slower counts each delay
twice, each time moved into the window (a daily course comes every other send day), and a
pause or an absence holds the lesson until the course resumes. Nothing is ever skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drip.content.sequences import Delay, Lesson, SendWindow


def reader_zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _localize(wall: datetime, zone: ZoneInfo) -> datetime:
    """Attach `zone` to a naive wall time, normalising a time skipped by a DST jump."""
    return wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)


def into_window(moment: datetime, window: SendWindow, zone: ZoneInfo) -> datetime:
    """The first instant at or after `moment` that lies inside the window, in UTC."""
    local = moment.astimezone(zone)
    for day_offset in range(8):
        day = (local + timedelta(days=day_offset)).date() if day_offset else local.date()
        if day.weekday() not in window.days:
            continue
        opens = _localize(datetime.combine(day, window.start), zone)
        closes = _localize(datetime.combine(day, window.end), zone)
        if day_offset == 0 and opens <= local < closes:
            return local.astimezone(UTC)
        if local < opens:
            return opens.astimezone(UTC)
    return local.astimezone(UTC)  # unreachable for a window with at least one day


def delay_ends(after: datetime, delay: Delay, zone: ZoneInfo) -> datetime:
    """When `delay` after `after` is over, before the send window moves it: days on the
    wall clock of `zone`, then hours and minutes elapsed, in UTC."""
    local = after.astimezone(zone)
    wall = local.replace(tzinfo=None) + timedelta(days=delay.days)
    return _localize(wall, zone).astimezone(UTC) + timedelta(seconds=delay.seconds)


@dataclass(frozen=True)
class Pace:
    """The reader's pace in one course: `slower`, and `resumes_at` while a pause or an
    absence holds the course (`held`: paused until the reader comes back, no date)."""

    slower: bool = False
    resumes_at: datetime | None = None
    held: bool = False


STEADY = Pace()


def next_due(
    after: datetime, delay: Delay, window: SendWindow, zone: ZoneInfo, pace: Pace = STEADY
) -> datetime:
    """When the lesson with `delay` is due if the previous one went out at `after`, at the
    reader's `pace` (a held course keeps the date it would have; the claim leaves it out)."""
    if delay.immediate:
        due = after.astimezone(UTC)
    else:
        due = into_window(delay_ends(after, delay, zone), window, zone)
        if pace.slower:
            due = into_window(delay_ends(due, delay, zone), window, zone)
    if pace.resumes_at is not None and due < pace.resumes_at:
        return pace.resumes_at.astimezone(UTC)
    return due


def morning_of(day: date, window: SendWindow, zone: ZoneInfo) -> datetime:
    """The first moment of the send window on `day` or after it, in the reader's zone (UTC)."""
    return into_window(_localize(datetime.combine(day, datetime.min.time()), zone), window, zone)


def timeline(
    lessons: tuple[Lesson, ...],
    start: datetime,
    window: SendWindow,
    zone: ZoneInfo,
    pace: Pace = STEADY,
) -> list[tuple[Lesson, datetime]]:
    """When each lesson would land for a reader who confirms at `start`, or whose last
    lesson went out then, at `pace` (`drip schedule`, the reader's page)."""
    result = []
    moment = start
    for lesson in lessons:
        moment = next_due(moment, lesson.delay, window, zone, pace)
        result.append((lesson, moment))
    return result
