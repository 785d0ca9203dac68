"""The reader's pace through real passes (SQLite and PostgreSQL, a real SMTP server): a
reader paused until they come back gets no lesson, and after 60 days one "still want the
course?" email, no more; slower counts each delay twice from the send; a pause set while a
worker holds the reader is refused rather than lost."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from drip.audience import pace
from drip.audience.subscriptions import Consent
from drip.core.clock import FrozenClock
from drip.services import Services, build_services
from drip.store.models import Enrollment, Event, EventKind
from tests.conftest import CHEAP_HASHER, enroll, make_settings
from tests.smtp import SmtpServer

HOW = Consent("lesson email", "", "127.0.0.1", "test")


@pytest.fixture
def svc(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Services]:
    services = build_services(
        make_settings(tmp_path, backend_url, smtp_url=smtp_server.url),
        clock,
        password_hasher=CHEAP_HASHER,
    )
    yield services
    services.engine.dispose()


def choose(svc: Services, action: str, *args: object) -> pace.Change:
    with svc.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        sequence = svc.content.library().sequences[enrollment.sequence]
        change: pace.Change = getattr(pace, action)(
            session, sequence, enrollment, svc.clock(), *args, HOW
        )
        session.commit()
        return change


def kinds(svc: Services) -> list[str]:
    with svc.sessions() as session:
        return list(session.scalars(select(Event.kind).order_by(Event.id)))


def test_a_long_pause_gets_one_still_wanted_email_and_no_lesson(
    svc: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    enroll(svc)
    dispatcher = svc.dispatcher()
    dispatcher.run_pass(clock())  # the welcome
    assert choose(svc, "pause", "back").due_at is None
    start = clock()
    for days in (1, 30, 59):
        clock.set(start + timedelta(days=days, hours=1))
        dispatcher.run_pass(clock())
    assert [m.subject for m in smtp_server.messages] == ["Welcome, friend"]
    clock.set(start + timedelta(days=61, hours=1))
    dry = dispatcher.run_pass(clock(), dry_run=True)
    assert [(o.lesson, o.status) for o in dry.outcomes] == [("still-wanted", "would-send")]
    assert len(smtp_server.messages) == 1  # the dry run sent nothing
    dispatcher.run_pass(clock())
    asked = smtp_server.messages[-1]
    assert asked.subject == "Still want “Tiny course”?"
    assert "/pace/" in asked.text()
    for days in (62, 90, 200):
        clock.set(start + timedelta(days=days, hours=1))
        dispatcher.run_pass(clock())
    assert len(smtp_server.messages) == 2  # one email, no more, and still no lesson
    assert kinds(svc).count(EventKind.PACE_STILL_WANTED_SENT) == 1


def test_the_reader_who_comes_back_gets_the_next_lesson_skipping_nothing(
    svc: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    enroll(svc)
    dispatcher = svc.dispatcher()
    dispatcher.run_pass(clock())
    choose(svc, "pause", "back")
    clock.advance(days=20)
    choose(svc, "next_now", True)
    dispatcher.run_pass(clock())
    assert [m.subject for m in smtp_server.messages] == ["Welcome, friend", "Lesson two"]


def test_next_lesson_now_outside_the_window_waits_for_it_unless_the_reader_says_now(
    svc: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    enroll(svc)
    svc.dispatcher().run_pass(clock())  # 08:00 New York, before the 09:00-11:00 window
    change = choose(svc, "next_now", False)
    assert change.due_at is not None and change.due_at.isoformat() == "2026-03-02T14:00:00+00:00"
    assert choose(svc, "next_now", True).due_at == clock()


def test_slower_counts_the_next_delay_twice_from_the_send(
    svc: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    enroll(svc)
    dispatcher = svc.dispatcher()
    dispatcher.run_pass(clock())  # Monday 2 March, 08:00 New York: the welcome
    choose(svc, "slower")
    with svc.sessions() as session:
        due = session.scalars(select(Enrollment.due_at)).one()
    assert due is not None
    # lesson two waits 2 days, twice: Wednesday 09:00 (window), then Friday 09:00
    assert due.isoformat() == "2026-03-06T14:00:00+00:00"
    clock.set(due)
    dispatcher.run_pass(clock())
    with svc.sessions() as session:
        after = session.scalars(select(Enrollment.due_at)).one()
    assert after is not None  # lesson three waits 3 days, twice: 6 days after Friday
    assert after.isoformat() == "2026-03-12T13:00:00+00:00"  # 09:00 New York, summer time


def test_a_choice_while_a_worker_holds_the_reader_is_refused_not_lost(
    svc: Services, clock: FrozenClock
) -> None:
    enroll(svc)
    with svc.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        enrollment.lease_owner, enrollment.due_at = "another-worker", clock() + timedelta(minutes=5)
        session.commit()
    with pytest.raises(pace.PaceError, match="on its way"):
        choose(svc, "pause", "2w")
    with svc.sessions() as session:
        assert session.scalars(select(Enrollment.paused_since)).one() is None
