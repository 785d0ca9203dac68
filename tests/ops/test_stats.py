"""The dashboard's numbers and the one-line "why hasn't the next lesson gone out?"."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from drip.audience.clicks import OPEN, record_click
from drip.audience.controls import pause
from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.ops.stats import axis_ticks, daily, funnel, overview, why_waiting
from drip.services import Services, build_services
from drip.store.models import Enrollment
from tests.conftest import TESTS, advance_through_due_times, make_settings
from tests.smtp import SmtpServer

CONSENT = Consent(source="test", text="Yes, send me the course.")


@pytest.fixture
def services(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Services]:
    """The numbers are SQL: each test runs on SQLite and on PostgreSQL."""
    svc = build_services(make_settings(tmp_path, backend_url, smtp_url=smtp_server.url), clock)
    yield svc
    svc.engine.dispose()


def sign_up(svc: Services, email: str, *, confirmed: bool = True) -> int:
    with svc.sessions() as session:
        enrollment = subscribe(
            session,
            svc.content.library(),
            "tiny",
            email,
            svc.clock(),
            consent=CONSENT,
            first_name="Ada",
            timezone="America/New_York",
            confirmed=confirmed,
        )
        session.commit()
        return enrollment.id


def why(
    svc: Services, enrollment_id: int, *, sequence_paused: bool = False, alive: bool = True
) -> tuple[str, bool]:
    with svc.sessions() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        assert enrollment is not None
        answer = why_waiting(
            enrollment,
            svc.content.library().get("tiny"),
            sequence_paused=sequence_paused,
            now=svc.clock(),
            alive=alive,
        )
        return answer.reason, answer.late


def test_overview_counts_sends_retries_failures_and_what_is_due(
    services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(services, "ada@example.org")
    sign_up(services, "bob@example.org")
    sign_up(services, "cat@example.org")
    smtp_server.answer("bob@example.org", "451 4.3.0 try again later")
    smtp_server.answer("cat@example.org", "550 5.1.1 no such user")
    with services.sessions() as session:
        before = overview(session, clock(), 60)
    assert (before.due_now, before.sent_hour, before.last_pass_at) == (3, 0, None)
    assert not before.scheduler_alive
    services.dispatcher().run_pass(clock())
    sign_up(services, "dan@example.org")
    with services.sessions() as session:
        after = overview(session, clock(), 60)
    assert (after.sent_hour, after.sent_day, after.retrying, after.failed) == (1, 1, 1, 1)
    assert after.due_now == 1  # dan, signed up after the pass
    assert after.due_day == 1  # bob's retry in a minute; ada's next lesson is two days away
    assert after.last_pass_at == clock() and after.last_pass_sent == 1
    assert after.scheduler_alive
    clock.advance(seconds=181)
    with services.sessions() as session:
        later = overview(session, clock(), 60)
    assert not later.scheduler_alive and later.last_pass_age == timedelta(seconds=181)
    assert later.sent_hour == 1
    clock.advance(hours=1)
    with services.sessions() as session:
        assert overview(session, clock(), 60).sent_hour == 0


def test_daily_series_counts_each_utc_day_and_fills_empty_days(
    services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(services, "ada@example.org")
    sign_up(services, "cat@example.org")
    smtp_server.answer("cat@example.org", "550 5.1.1 no such user")
    services.dispatcher().run_pass(clock())
    first_day = clock().date()
    clock.advance(days=2, hours=1)  # Wednesday 09:00 New York: lesson two is due
    services.dispatcher().run_pass(clock())
    with services.sessions() as session:
        series = daily(session, clock(), days=30)
    assert len(series) == 30 and series[-1].day == clock().date()
    counts = {d.day: (d.sent, d.failed) for d in series if d.sent or d.failed}
    assert counts == {first_day: (1, 1), clock().date(): (1, 0)}


def test_funnel_follows_readers_from_sign_up_to_each_lesson(
    services: Services, clock: FrozenClock
) -> None:
    sign_up(services, "ada@example.org")
    sign_up(services, "bob@example.org")
    sign_up(services, "pending@example.org", confirmed=False)
    services.dispatcher().run_pass(clock())
    with services.sessions() as session:
        result = funnel(session, services.content.library().sequences["tiny"])
    assert [(s.label, s.count) for s in result.steps] == [
        ("Signed up", 3),
        ("Confirmed", 2),
        ("1. Welcome, friend", 2),
        ("2. Lesson two", 0),
        ("3. Lesson three", 0),
        ("Completed", 0),
        ("Unsubscribed", 0),
    ]


def test_why_a_lesson_that_is_due_waits_for_the_next_pass(
    services: Services, clock: FrozenClock
) -> None:
    enrollment = sign_up(services, "ada@example.org")
    reason, late = why(services, enrollment)
    assert late and reason.startswith("Lesson “Welcome")
    assert "goes out with the next dispatch pass" in reason
    reason, _ = why(services, enrollment, alive=False)
    assert "the scheduler is not running" in reason


def test_why_a_lesson_whose_delay_ended_outside_the_window_waits_for_it(
    services: Services, clock: FrozenClock
) -> None:
    enrollment = sign_up(services, "ada@example.org")
    services.dispatcher().run_pass(clock())  # Monday 08:00 New York: the welcome goes at once
    reason, late = why(services, enrollment)
    assert not late
    assert reason == (
        "Lesson “Lesson two” due 2026-03-04 14:00 UTC (in 2 d): its delay ended "
        "2026-03-04 13:00 UTC (in 2 d), outside the send window "
        "(09:00–11:00 America/New_York)."
    )
    clock.advance(days=2, minutes=30)  # the delay is over, the window opens in half an hour
    reason, late = why(services, enrollment)
    assert late and "outside the send window" in reason


def test_why_nothing_goes_out_to_paused_suppressed_retrying_and_unconfirmed_readers(
    services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    pending = sign_up(services, "pending@example.org", confirmed=False)
    assert why(services, pending)[0].startswith("The confirmation email was due")
    retrying = sign_up(services, "bob@example.org")
    bounced = sign_up(services, "cat@example.org")
    paused = sign_up(services, "dan@example.org")
    smtp_server.answer("bob@example.org", "451 4.3.0 mailbox busy")
    smtp_server.answer("cat@example.org", "550 5.1.1 no such user")
    with services.sessions() as session:
        target = session.get(Enrollment, paused)
        assert target is not None
        pause(session, target, clock(), "the reader asked for a break")
        session.commit()
    services.dispatcher().run_pass(clock())

    reason, late = why(services, pending)
    assert not late and reason.startswith("Waiting for confirmation (the email went out")
    reason, late = why(services, retrying)
    assert late and reason.startswith("Retrying after an SMTP error: ")
    assert "451" in reason and "mailbox busy" in reason
    reason, late = why(services, bounced)
    assert late and reason.startswith("Suppressed: ") and "550" in reason
    reason, late = why(services, paused)
    assert late and reason.startswith("Paused: the reader asked for a break.")
    reason, _ = why(services, retrying, sequence_paused=True)
    assert "the sequence is paused by an operator" in reason


def test_why_a_finished_course_sends_nothing_more(services: Services, clock: FrozenClock) -> None:
    enrollment = sign_up(services, "ada@example.org")
    advance_through_due_times(services, clock)
    with services.sessions() as session:
        assert session.scalar(select(Enrollment.status)) == "completed"
    reason, late = why(services, enrollment)
    assert not late and reason.startswith("Completed ") and "every lesson has gone out" in reason


def test_axis_ticks_are_round_and_reach_the_maximum() -> None:
    assert axis_ticks(0) == [0, 1]
    assert axis_ticks(7) == [0, 2, 4, 6, 8]
    assert axis_ticks(10) == [0, 5, 10]
    assert axis_ticks(1234) == [0, 500, 1000, 1500]


def test_around_the_spring_clock_change_the_why_line_names_the_dispatchers_due_time(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer
) -> None:
    """A 36-hour delay from Saturday 7 March 2026, 09:30 in New York, ends 36 elapsed hours
    later, across the jump to daylight time: 22:30 EDT on Sunday, not 21:30."""
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences" / "tiny", root / "tiny")
    yaml = root / "tiny" / "sequence.yaml"
    yaml.write_text(yaml.read_text().replace('"09:00"', '"00:00"').replace('"11:00"', '"23:59"'))
    second = root / "tiny" / "02-second.md"
    second.write_text(second.read_text().replace("delay: 2d", "delay: 36h"))
    clock = FrozenClock(datetime(2026, 3, 7, 14, 30, tzinfo=UTC))
    svc = build_services(
        make_settings(tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=root), clock
    )
    enrollment_id = sign_up(svc, "ada@example.org")
    svc.dispatcher().run_pass(clock())  # the welcome goes; the dispatcher schedules the next
    with svc.sessions() as session:
        due_at = session.get(Enrollment, enrollment_id).due_at  # type: ignore[union-attr]
    assert due_at == datetime(2026, 3, 9, 2, 30, tzinfo=UTC)  # 22:30 EDT on the 8th

    clock.set(due_at - timedelta(minutes=30))
    with svc.sessions() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        assert enrollment is not None
        answer = why_waiting(
            enrollment, svc.content.library().get("tiny"), sequence_paused=True, now=clock()
        )
    assert answer.delay_ended == answer.due_at == due_at
    assert not answer.late  # its time has not come: it is paused, not late
    assert "due 2026-03-09 02:30 UTC (in 30 min)" in answer.reason
    svc.engine.dispose()


def test_the_funnel_counts_readers_who_clicked_a_link_but_not_scanners_or_opens(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    folder = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", folder)
    yaml_file = folder / "tiny" / "sequence.yaml"
    yaml_file.write_text(yaml_file.read_text() + "track_links: true\n")
    svc = build_services(
        make_settings(tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=folder), clock
    )
    ada = sign_up(svc, "ada@example.org")
    bob = sign_up(svc, "bob@example.org")
    cy = sign_up(svc, "cy@example.org")
    svc.dispatcher().run_pass(clock())
    library = svc.content.library()
    browser = {"user_agent": "Mozilla/5.0 (X11)", "accept": "text/html"}
    with svc.sessions() as session:
        # bob's only "click" is his mail scanner's, a second after the send; cy only opened
        record_click(
            session,
            library,
            bob,
            "welcome",
            0,
            "https://x.org",
            clock(),
            user_agent="Barracuda",
            accept="*/*",
        )
        clock.advance(minutes=5)
        for _ in range(2):  # ada clicks twice: one reader
            record_click(session, library, ada, "welcome", 0, "https://x.org", clock(), **browser)
        record_click(session, library, ada, "welcome", 1, "https://y.org", clock(), **browser)
        record_click(session, library, cy, "welcome", OPEN, "pixel", clock(), **browser)
        session.commit()
        steps = {
            s.label: (s.count, s.share, s.kind)
            for s in funnel(session, library.sequences["tiny"]).steps
        }
    svc.engine.dispose()
    assert steps["Clicked a link"] == (1, "33%", "clicked")
    assert steps["Signed up"] == (3, None, "")
    assert steps["1. Welcome, friend"] == (3, "100%", "")
