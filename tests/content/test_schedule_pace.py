"""The one due function at the reader's pace (drip.content.schedule.next_due), on fixed times."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from drip.content.schedule import Pace, morning_of, next_due, timeline
from drip.content.sequences import Delay, Lesson, SendWindow

WEEKDAYS = SendWindow(time(8, 0), time(18, 0), frozenset(range(5)))
CHICAGO = ZoneInfo("America/Chicago")
DAILY = Delay(days=1)


def local(moment: datetime) -> tuple[str, str]:
    here = moment.astimezone(CHICAGO)
    return f"{here:%a %Y-%m-%d}", f"{here:%H:%M}"


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CHICAGO).astimezone(UTC)


def test_steady_pace_is_the_course_own() -> None:
    monday = at(2026, 12, 7, 9, 10)
    assert local(next_due(monday, DAILY, WEEKDAYS, CHICAGO)) == ("Tue 2026-12-08", "09:10")
    assert next_due(monday, DAILY, WEEKDAYS, CHICAGO, Pace()) == next_due(
        monday, DAILY, WEEKDAYS, CHICAGO
    )


def test_slower_sends_a_daily_course_every_other_send_day() -> None:
    moment = at(2026, 12, 7, 9, 10)  # a Monday
    days = []
    for _ in range(5):
        moment = next_due(moment, DAILY, WEEKDAYS, CHICAGO, Pace(slower=True))
        days.append(local(moment)[0][:3])
    # send days are Mon-Fri: every other one, across the weekend too
    assert days == ["Wed", "Fri", "Tue", "Thu", "Mon"]


def test_slower_doubles_a_delay_in_hours() -> None:
    start = at(2026, 12, 7, 9, 0)
    due = next_due(start, Delay(seconds=2 * 3600), WEEKDAYS, CHICAGO, Pace(slower=True))
    assert local(due) == ("Mon 2026-12-07", "13:00")


def test_a_pause_holds_the_lesson_until_the_course_resumes() -> None:
    start = at(2026, 12, 7, 9, 10)
    resumes = morning_of(date(2026, 12, 21), WEEKDAYS, CHICAGO)
    due = next_due(start, DAILY, WEEKDAYS, CHICAGO, Pace(resumes_at=resumes))
    assert due == resumes
    assert local(due) == ("Mon 2026-12-21", "08:00")


def test_a_pause_shorter_than_the_delay_changes_nothing() -> None:
    start = at(2026, 12, 7, 9, 10)
    resumes = at(2026, 12, 8, 8, 0)
    weekly = Delay(days=7)
    assert next_due(start, weekly, WEEKDAYS, CHICAGO, Pace(resumes_at=resumes)) == next_due(
        start, weekly, WEEKDAYS, CHICAGO
    )


def test_the_morning_a_course_resumes_is_the_window_opening_on_a_send_day() -> None:
    # Saturday 19 December: the window is closed at weekends, so Monday at 08:00 Chicago time
    resumes = morning_of(date(2026, 12, 19), WEEKDAYS, CHICAGO)
    assert local(resumes) == ("Mon 2026-12-21", "08:00")
    assert resumes == datetime(2026, 12, 21, 14, 0, tzinfo=UTC)


def test_the_morning_follows_the_reader_zone_across_a_clock_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    every_day = SendWindow(time(7, 30), time(20, 0))
    resumes = morning_of(date(2027, 3, 28), every_day, berlin)  # summer time starts that night
    assert resumes.astimezone(berlin).strftime("%Y-%m-%d %H:%M %Z") == "2027-03-28 07:30 CEST"


def test_a_paused_timeline_skips_no_lesson() -> None:
    lessons = tuple(
        Lesson(f"l{n}", n, Path(f"0{n}-l{n}.md"), "s", DAILY, "", "", 1, "v") for n in range(1, 4)
    )
    start = at(2026, 12, 7, 9, 10)
    resumes = morning_of(date(2026, 12, 21), WEEKDAYS, CHICAGO)
    plan = timeline(lessons, start, WEEKDAYS, CHICAGO, Pace(resumes_at=resumes))
    assert [lesson.key for lesson, _ in plan] == ["l1", "l2", "l3"]
    assert [local(due)[0] for _, due in plan] == [
        "Mon 2026-12-21",
        "Tue 2026-12-22",
        "Wed 2026-12-23",
    ]
