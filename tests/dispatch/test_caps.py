"""Per-reader caps: a reader in several courses and a broadcast gets one email a day (their
day), the courses taking turns, then the broadcast; nothing is lost, only moved to the
reader's next window; a weekly cap moves what is over it to the next week."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, event, select

from drip.content.sequences import SendWindow
from drip.core.clock import FrozenClock
from drip.dispatch.broadcasts import read_broadcast, schedule
from drip.dispatch.caps import Caps, Tally, next_opening, tally
from drip.dispatch.report import OutcomeStatus, PassReport
from drip.services import Services, build_services
from drip.store.models import (
    Broadcast,
    BroadcastRecipient,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    RecipientStatus,
    Subscriber,
)
from tests.conftest import courses_beside_tiny, enroll, make_settings
from tests.dispatch.test_chaining import library_with
from tests.dispatch.test_one_way import add_finished_readers
from tests.query_plans import statements
from tests.smtp import SmtpServer

NEW_YORK = ZoneInfo("America/New_York")


def course(title: str) -> dict[str, str]:
    """Two lessons a day apart, in the morning window of New York."""
    return {
        "sequence.yaml": (
            f'title: "{title}"\npromise: "Two lessons."\n'
            'sender: "Tiny Author <author@example.org>"\ntimezone: America/New_York\n'
            'send_window: {start: "09:00", end: "11:00"}\n'
            # About caps alone: a reader who never clicks is not asked "Still want these?".
            "repermission: false\n"
        ),
        "01-hello.md": f'---\nsubject: "{title}: one"\ndelay: 0\n---\nOne.\n',
        "02-more.md": f'---\nsubject: "{title}: two"\ndelay: 1d\n---\nTwo.\n',
    }


NEWS = """---
subject: "News for everyone"
to: [alpha]
---
Hi. [Leave]({{ unsubscribe_url }})
"""


@pytest.fixture
def svc(tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock) -> Services:
    courses = courses_beside_tiny(
        tmp_path,
        {"alpha": course("Alpha"), "beta": course("Beta"), "gamma": course("Gamma")},
    )
    return build_services(
        make_settings(
            tmp_path,
            backend_url,
            smtp_url=smtp_server.url,
            sequences_dir=courses,
            reader_daily_cap=1,  # the product's default (the tests' settings raise it)
        ),
        clock,
    )


def local(day: datetime, hour: int, minute: int = 0) -> datetime:
    return day.astimezone(NEW_YORK).replace(hour=hour, minute=minute).astimezone(UTC)


def test_a_reader_in_three_courses_and_a_broadcast_gets_one_email_a_morning_and_all_of_them(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    for slug in ("alpha", "beta", "gamma"):
        enroll(svc, "ada@example.org", slug)
    library = svc.content.library()
    news = tmp_path / "news.md"
    news.write_text(NEWS)
    with svc.sessions() as session:
        schedule(session, library, read_broadcast(news, library), clock(), clock())
    dispatcher = svc.dispatcher()
    start = clock()
    per_day = []
    for day in range(9):
        before = len(smtp_server.to("ada@example.org"))
        for hour, minute in ((9, 0), (9, 30), (10, 15), (10, 59), (15, 0), (23, 59)):
            clock.set(local(start + timedelta(days=day), hour, minute))
            dispatcher.run_pass(clock())
        per_day.append(len(smtp_server.to("ada@example.org")) - before)

    assert per_day == [1, 1, 1, 1, 1, 1, 1, 0, 0]
    assert [m.subject for m in smtp_server.to("ada@example.org")] == [
        "Alpha: one",  # the welcomes first, the course that wrote least lately first
        "Beta: one",
        "Gamma: one",
        "Alpha: two",
        "Beta: two",
        "Gamma: two",
        "News for everyone",  # a broadcast waits behind the reader's lessons
    ]
    with svc.sessions() as session:
        statuses = session.scalars(select(Enrollment.status)).all()
        copies = session.scalars(select(BroadcastRecipient.status)).all()
    assert set(statuses) == {EnrollmentStatus.COMPLETED}
    assert copies == [RecipientStatus.SENT]


def test_the_course_that_wrote_least_lately_goes_first_whatever_its_number(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    alpha, beta = (enroll(svc, "ada@example.org", slug) for slug in ("alpha", "beta"))
    morning = local(clock(), 9, 30)
    with svc.sessions() as session:
        for ident, wrote in (
            (alpha, morning - timedelta(hours=20)),
            (beta, morning - timedelta(days=3)),
        ):
            enrollment = session.get(Enrollment, ident)
            assert enrollment is not None
            enrollment.last_sent_at, enrollment.due_at = wrote, morning
        session.commit()
    clock.set(morning)
    svc.dispatcher().run_pass(clock())
    assert [m.subject for m in smtp_server.to("ada@example.org")] == ["Beta: one"]


def test_two_readers_are_capped_each_on_their_own(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    for email in ("ada@example.org", "bo@example.org"):
        enroll(svc, email, "alpha")
        enroll(svc, email, "beta")
    clock.set(local(clock(), 9, 30))
    report = svc.dispatcher().run_pass(clock())

    assert len(smtp_server.to("ada@example.org")) == 1
    assert len(smtp_server.to("bo@example.org")) == 1
    held = [o for o in report.outcomes if o.status == "held"]
    assert len(held) == 2 and all("cap is reached" in o.detail for o in held)


def test_a_raised_daily_cap_lets_that_many_through(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    courses = courses_beside_tiny(tmp_path, {"alpha": course("Alpha"), "beta": course("Beta")})
    svc = build_services(
        make_settings(
            tmp_path,
            sqlite_url,
            smtp_url=smtp_server.url,
            sequences_dir=courses,
            reader_daily_cap=2,
        ),
        clock,
    )
    enroll(svc, "ada@example.org", "alpha")
    enroll(svc, "ada@example.org", "beta")
    enroll(svc, "ada@example.org", "tiny")
    clock.set(local(clock(), 9, 30))
    svc.dispatcher().run_pass(clock())

    assert len(smtp_server.to("ada@example.org")) == 2


WINDOW = SendWindow(time(0), time.max)  # any hour, every day


def test_the_day_is_the_readers_own() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    # 23:30 in Tokyo on Monday, and one message at 10:00 Tokyo time that Monday.
    now = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    sent = [datetime(2026, 3, 2, 1, 0, tzinfo=UTC)]
    counted = tally(sent, now, tokyo)
    assert counted == Tally(day=1, week=1)
    assert next_opening(now, tokyo, Caps(1, None), counted, WINDOW) == datetime(
        2026, 3, 2, 15, 0, tzinfo=UTC
    )  # Tuesday 00:00 in Tokyo
    # Half an hour later it is Tuesday there: yesterday's message no longer counts.
    later = now + timedelta(minutes=30)
    assert next_opening(later, tokyo, Caps(1, None), tally(sent, later, tokyo), WINDOW) is None


def test_a_weekly_cap_moves_what_is_over_it_to_the_next_monday() -> None:
    zone = ZoneInfo("Europe/Paris")
    monday = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 09:00 in Paris
    sent = [monday, monday + timedelta(days=1)]
    wednesday = monday + timedelta(days=2)
    counted = tally(sent, wednesday, zone)
    assert counted == Tally(day=0, week=2)
    assert next_opening(wednesday, zone, Caps(1, 3), counted, WINDOW) is None
    assert next_opening(wednesday, zone, Caps(1, 2), counted, WINDOW) == datetime(
        2026, 3, 8, 23, 0, tzinfo=UTC
    )  # Monday 9 March, 00:00 in Paris
    # The next week counts afresh.
    next_monday = monday + timedelta(days=7)
    assert tally(sent, next_monday, zone) == Tally(day=0, week=0)


def test_the_next_opening_is_inside_the_courses_window() -> None:
    window = SendWindow(time(9), time(11))
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 in New York
    counted = Tally(day=1, week=1)
    assert next_opening(now, NEW_YORK, Caps(1, None), counted, window) == datetime(
        2026, 3, 3, 14, 0, tzinfo=UTC
    )  # 09:00 the next morning in New York


def test_the_dry_run_says_which_lessons_the_cap_holds_as_the_pass_then_does(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    enroll(svc, "ada@example.org", "alpha")
    enroll(svc, "ada@example.org", "beta")
    news = tmp_path / "news.md"
    news.write_text(NEWS)
    library = svc.content.library()
    with svc.sessions() as session:
        schedule(session, library, read_broadcast(news, library), clock(), clock())
    clock.set(local(clock(), 9, 30))
    dispatcher = svc.dispatcher()

    dry = dispatcher.run_pass(clock(), dry_run=True)
    real = dispatcher.run_pass(clock())

    def seen(report: PassReport) -> set[tuple[str, str, str]]:
        return {
            (o.sequence, o.lesson, "sent" if o.status == OutcomeStatus.WOULD_SEND else o.status)
            for o in report.outcomes
        }

    assert (
        seen(dry)
        == seen(real)
        == {
            ("alpha", "hello", "sent"),
            ("beta", "hello", "held"),
            ("alpha", "broadcast-1", "held"),  # the broadcast waits behind the reader's lessons
        }
    )
    assert [m.subject for m in smtp_server.to("ada@example.org")] == ["Alpha: one"]


def test_an_offer_waits_behind_the_readers_lessons_and_is_not_dropped_after_a_week(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    courses = library_with(tmp_path, "on_complete: {offer: next-course}\nrepermission: false\n")
    long = {
        f"{n:02d}-day{n}.md": f'---\nsubject: "Long: {n}"\ndelay: 1d\n---\nDay.\n'
        for n in range(2, 11)
    }
    long["01-day1.md"] = '---\nsubject: "Long: 1"\ndelay: 0\n---\nDay.\n'
    long["sequence.yaml"] = course("Long")["sequence.yaml"]
    (courses / "long").mkdir()
    for name, text in long.items():
        (courses / "long" / name).write_text(text)
    svc = build_services(
        make_settings(
            tmp_path,
            backend_url,
            smtp_url=smtp_server.url,
            sequences_dir=courses,
            reader_daily_cap=1,
        ),
        clock,
    )
    (email,) = add_finished_readers(svc, 1, clock())  # finished tiny an hour ago: an offer due
    enroll(svc, email, "long")
    start = clock()
    per_day = []
    for day in range(13):
        before = len(smtp_server.to(email))
        for hour in (9, 10, 15):
            clock.set(local(start + timedelta(days=day), hour, 30))
            svc.dispatcher().run_pass(clock())
        per_day.append(len(smtp_server.to(email)) - before)

    subjects = [m.subject for m in smtp_server.to(email)]
    assert per_day == [1] * 11 + [0, 0]
    # the offer comes the day after the last lesson, ten days after the course it follows
    assert subjects == [f"Long: {n}" for n in range(1, 11)] + ["What comes after Tiny course"]
    with svc.sessions() as session:
        events = session.scalars(select(Event.kind).where(Event.kind == EventKind.OFFERED)).all()
    assert len(events) == 1
    svc.engine.dispose()


def test_over_the_weekly_cap_the_rest_wait_for_next_monday_and_all_arrive(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    courses = courses_beside_tiny(
        tmp_path,
        {"alpha": course("Alpha"), "beta": course("Beta"), "gamma": course("Gamma")},
    )
    settings = make_settings(
        tmp_path,
        sqlite_url,
        smtp_url=smtp_server.url,
        sequences_dir=courses,
        reader_daily_cap=2,
        reader_weekly_cap=3,
    )
    svc = build_services(settings, clock)
    for slug in ("alpha", "beta", "gamma"):
        enroll(svc, "ada@example.org", slug)
    start = clock()  # Monday
    per_day = []
    for day in range(14):
        before = len(smtp_server.to("ada@example.org"))
        for hour in (9, 10):
            clock.set(local(start + timedelta(days=day), hour, 30))
            svc.dispatcher().run_pass(clock())
        per_day.append(len(smtp_server.to("ada@example.org")) - before)

    # two on Monday, one on Tuesday (three a week), then nothing until the next Monday
    assert per_day == [2, 1, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0]
    assert len(smtp_server.to("ada@example.org")) == 6


def _commits_of_a_pass_holding_every_copy(
    svc: Services, clock: FrozenClock, tmp_path: Path, readers: int
) -> int:
    """Readers who each had today's lesson, then a broadcast to them all: the commits of the
    pass that holds every copy to the readers' next morning."""
    emails = [f"r{n}@example.org" for n in range(readers)]
    for email in emails:
        enroll(svc, email, "alpha")
    clock.set(local(clock(), 9, 30))
    svc.dispatcher().run_pass(clock())  # each reader's lesson: the day's one email
    news = tmp_path / "news.md"
    news.write_text(NEWS)
    library = svc.content.library()
    with svc.sessions() as session:
        schedule(session, library, read_broadcast(news, library), clock(), clock())
    commits: list[object] = []

    def count(connection: object) -> None:
        commits.append(connection)

    event.listen(svc.engine, "commit", count)
    try:
        report = svc.dispatcher().run_pass(clock() + timedelta(minutes=5))
    finally:
        event.remove(svc.engine, "commit", count)
    held = [o for o in report.outcomes if o.status == OutcomeStatus.HELD]
    assert len(held) == readers and all("cap is reached" in o.detail for o in held)
    with svc.sessions() as session:
        due = session.scalars(select(BroadcastRecipient.due_at)).all()
    assert len(due) == readers and all(at > clock() + timedelta(hours=20) for at in due)
    return len(commits)


def test_a_broadcast_whose_readers_are_all_over_the_cap_holds_them_in_as_many_commits_for_ten(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    """Each copy over its reader's cap cost a status read, an update and a commit of its own
    at its turn; now the batch holds them all before its first hand-off, in one commit."""
    counts = []
    for readers in (2, 10):
        folder = tmp_path / str(readers)
        folder.mkdir()
        settings = make_settings(
            folder,
            backend_url,
            smtp_url=smtp_server.url,
            sequences_dir=courses_beside_tiny(folder, {"alpha": course("Alpha")}),
            reader_daily_cap=1,
        )
        frozen = FrozenClock(clock())
        svc = build_services(settings, frozen)
        try:
            with svc.engine.begin() as conn:  # each round starts from an empty database
                for model in (BroadcastRecipient, Broadcast, Subscriber):
                    conn.execute(delete(model))
            counts.append(_commits_of_a_pass_holding_every_copy(svc, frozen, folder, readers))
        finally:
            svc.engine.dispose()
    assert counts[0] == counts[1], counts


def _statements_of_a_pass_holding_every_lesson(
    svc: Services, clock: FrozenClock, readers: int
) -> int:
    """Readers who each had today's lesson of one course, then joined a second: the
    statements of the pass that holds every second course's welcome to the next morning."""
    emails = [f"r{n}@example.org" for n in range(readers)]
    for email in emails:
        enroll(svc, email, "alpha")
    clock.set(local(clock(), 9, 30))
    svc.dispatcher().run_pass(clock())  # each reader's lesson: the day's one email
    for email in emails:
        enroll(svc, email, "beta")
    with statements(svc.engine) as seen:
        report = svc.dispatcher().run_pass(clock() + timedelta(minutes=5))
    assert report.count(OutcomeStatus.HELD) == readers
    assert report.count(OutcomeStatus.SENT) == 0
    return len(seen)


def test_a_batch_whose_lessons_are_all_over_the_cap_puts_them_back_in_one_statement(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    counts = []
    for readers in (1, 2, 10):  # the first round writes what a database writes once
        folder = tmp_path / str(readers)
        folder.mkdir()
        courses = {"alpha": course("Alpha"), "beta": course("Beta")}
        settings = make_settings(
            folder,
            backend_url,
            smtp_url=smtp_server.url,
            sequences_dir=courses_beside_tiny(folder, courses),
            reader_daily_cap=1,
        )
        frozen = FrozenClock(clock())
        svc = build_services(settings, frozen)
        try:
            with svc.engine.begin() as conn:  # each round starts from an empty database
                conn.execute(delete(Subscriber))
            counts.append(_statements_of_a_pass_holding_every_lesson(svc, frozen, readers))
        finally:
            svc.engine.dispose()
    assert counts[1] == counts[2], counts
