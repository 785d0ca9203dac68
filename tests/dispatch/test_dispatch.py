"""A reader's walk through a sequence, against a real SMTP server and a frozen clock."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from drip.audience.controls import pause, restart, resume
from drip.audience.leaving import unsubscribe
from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.services import Services, build_services
from drip.store.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    Subscriber,
)
from tests.conftest import advance_through_due_times, make_settings, next_due
from tests.smtp import SmtpServer

NEW_YORK = ZoneInfo("America/New_York")
CONSENT = Consent(source="test", text="Yes, send me the course.")


@pytest.fixture
def engine_services(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Services:
    return build_services(make_settings(tmp_path, backend_url, smtp_url=smtp_server.url), clock)


def sign_up(
    svc: Services,
    email: str = "ada@example.org",
    *,
    name: str = "Ada",
    timezone: str = "America/New_York",
    confirmed: bool = True,
) -> int:
    with svc.sessions() as session:
        enrollment = subscribe(
            session,
            svc.content.library(),
            "tiny",
            email,
            svc.clock(),
            consent=CONSENT,
            first_name=name,
            timezone=timezone,
            confirmed=confirmed,
        )
        session.commit()
        return enrollment.id


def run_days(svc: Services, clock: FrozenClock, days: int, step_minutes: int = 30) -> None:
    """Run a dispatch pass every `step_minutes` of simulated time."""
    dispatcher = svc.dispatcher()
    for _ in range(days * 24 * 60 // step_minutes):
        dispatcher.run_pass(clock())
        clock.advance(minutes=step_minutes)


def test_reader_gets_each_lesson_once_in_order_inside_the_window(
    engine_services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(engine_services)
    advance_through_due_times(engine_services, clock)

    received = smtp_server.to("ada@example.org")
    assert [m.subject for m in received] == ["Welcome, Ada", "Lesson two", "Lesson three"]
    sent = [m.message["Date"].datetime.astimezone(NEW_YORK) for m in received]
    for moment in sent[1:]:  # the welcome goes right away; the rest in 09:00-11:00 New York
        assert 9 <= moment.hour < 11, moment
    assert (sent[1].date() - sent[0].date()).days == 2
    assert (sent[2].date() - sent[1].date()).days == 3
    with engine_services.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        assert enrollment.status == EnrollmentStatus.COMPLETED
        assert [d.status for d in enrollment.deliveries] == ["sent"] * 3


def test_message_has_both_parts_and_the_list_headers(
    engine_services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    enrollment_id = sign_up(engine_services)
    engine_services.dispatcher().run_pass(clock())

    (message,) = smtp_server.messages
    msg = message.message
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["From"] == "Tiny Author <author@example.org>"
    assert msg["List-Id"] == '"Tiny course" <tiny.drip.test>'
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    raw_header = next(
        line for line in message.raw.split(b"\r\n") if line.startswith(b"List-Unsubscribe:")
    )
    assert raw_header.startswith(b"List-Unsubscribe: <http://drip.test/unsubscribe/")
    # a random part and a signature, at the domain of the From address
    assert re.fullmatch(
        rf"<drip\.{enrollment_id}\.welcome\.[0-9a-f]{{16}}\.[0-9a-f]{{16}}@example\.org>",
        msg["Message-ID"],
    )
    with engine_services.sessions() as session:  # stored on the delivery
        assert session.scalars(select(Delivery.message_id)).one() == msg["Message-ID"]
    assert "Hi Ada," in message.text()
    assert "http://drip.test/magnet/" in message.html()
    assert "1 Test Street, Springfield" in message.text()


def test_unsubscribed_reader_gets_no_more_lessons(
    engine_services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    enrollment_id = sign_up(engine_services)
    engine_services.dispatcher().run_pass(clock())
    lesson_two = next_due(engine_services)
    assert lesson_two is not None
    with engine_services.sessions() as session:
        unsubscribe(session, enrollment_id, clock())
        session.commit()
    for day in range(8):  # lesson two's time, then the same morning on the next days
        clock.set(lesson_two + timedelta(days=day))
        engine_services.dispatcher().run_pass(clock())
    assert [m.subject for m in smtp_server.messages] == ["Welcome, Ada"]


def test_transient_failure_is_retried_and_delivered(
    engine_services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    smtp_server.answer("ada@example.org", "451 4.3.0 try again later")
    sign_up(engine_services)
    report = engine_services.dispatcher().run_pass(clock())
    assert report.count("retrying") == 1
    assert smtp_server.messages == []
    clock.advance(minutes=2)
    engine_services.dispatcher().run_pass(clock())
    assert [m.subject for m in smtp_server.messages] == ["Welcome, Ada"]
    with engine_services.sessions() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.status == DeliveryStatus.SENT
        assert delivery.attempts == 2


def test_permanent_failure_suppresses_the_address(
    engine_services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    smtp_server.answer("ada@example.org", "550 5.1.1 no such user")
    sign_up(engine_services)
    engine_services.dispatcher().run_pass(clock())
    run_days(engine_services, clock, 6, step_minutes=120)
    assert smtp_server.messages == []
    with engine_services.sessions() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.suppressed_reason == "550 5.1.1 no such user"
        assert subscriber.enrollments[0].status == EnrollmentStatus.SUPPRESSED
        assert session.scalars(select(Delivery)).one().status == DeliveryStatus.FAILED


def test_double_opt_in_sends_confirmation_first(
    engine_services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(engine_services, confirmed=False)
    engine_services.dispatcher().run_pass(clock())
    (message,) = smtp_server.messages
    assert message.subject == "Please confirm: Tiny course"
    assert "http://drip.test/confirm/" in message.text()
    clock.advance(hours=23)
    engine_services.dispatcher().run_pass(clock())
    assert len(smtp_server.messages) == 1  # nothing else until the reader confirms
    clock.advance(days=1)
    engine_services.dispatcher().run_pass(clock())
    # but the one reminder a day after (tests/dispatch/test_reminders.py), and no lesson
    assert [m.subject for m in smtp_server.messages] == [
        "Please confirm: Tiny course",
        "Did you mean to sign up for Tiny course?",
    ]


def test_dst_change_keeps_lessons_in_the_local_morning(
    engine_services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    # US clocks go forward on Sunday 8 March 2026: lessons before and after stay 09:00-11:00.
    clock.advance(days=4)  # Friday 6 March
    sign_up(engine_services)
    advance_through_due_times(engine_services, clock)
    local = [m.message["Date"].datetime.astimezone(NEW_YORK) for m in smtp_server.messages]
    assert len(local) == 3
    assert len({moment.utcoffset() for moment in local}) == 2  # the course crosses the change
    for moment in local[1:]:
        assert 9 <= moment.hour < 11, moment
    assert local[2] - local[1] < timedelta(days=3, hours=2)


def test_one_smtp_connection_serves_a_batch(
    engine_services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    for n in range(5):
        sign_up(engine_services, f"reader{n}@example.org", name=f"R{n}")
    report = engine_services.dispatcher().run_pass(clock())
    assert report.count("sent") == 5
    assert len({m.peer for m in smtp_server.messages}) == 1


def test_paused_reader_gets_nothing_until_resumed(
    engine_services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    enrollment_id = sign_up(engine_services)
    engine_services.dispatcher().run_pass(clock())
    lesson_two = next_due(engine_services)
    assert lesson_two is not None
    with engine_services.sessions() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        assert enrollment is not None
        pause(session, enrollment, clock(), "operator")
        session.commit()
    for day in range(4):  # lesson two's time, then the same morning on the next days
        clock.set(lesson_two + timedelta(days=day))
        engine_services.dispatcher().run_pass(clock())
    assert len(smtp_server.messages) == 1
    with engine_services.sessions() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        assert enrollment is not None
        resume(session, engine_services.content.library(), enrollment, clock())
        session.commit()
    advance_through_due_times(engine_services, clock)
    assert [m.subject for m in smtp_server.messages] == [
        "Welcome, Ada",
        "Lesson two",
        "Lesson three",
    ]


def test_a_restarted_course_sends_its_welcome_under_a_new_message_id(
    engine_services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    enrollment_id = sign_up(engine_services)
    engine_services.dispatcher().run_pass(clock())
    with engine_services.sessions() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        assert enrollment is not None
        restart(session, engine_services.content.library(), enrollment, clock())
        session.commit()
    clock.advance(minutes=1)
    engine_services.dispatcher().run_pass(clock())

    first, again = smtp_server.messages
    assert first.subject == again.subject == "Welcome, Ada"
    assert first.message["Message-ID"] != again.message["Message-ID"]


def test_a_confirmation_between_lessons_is_recorded_with_its_event_and_the_lessons_go_on(
    engine_services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    # On PostgreSQL each record runs while the next message opens (drip.dispatch.lane):
    # the confirmation's own record, with its timeline event, is one of them.
    sign_up(engine_services, "first@example.org")
    pending = sign_up(engine_services, "second@example.org", confirmed=False)
    sign_up(engine_services, "third@example.org")
    report = engine_services.dispatcher().run_pass(clock())
    assert [o.status for o in report.outcomes] == ["sent", "sent", "sent"]
    confirmation = smtp_server.to("second@example.org")[0]
    assert confirmation.subject == "Please confirm: Tiny course"
    assert len(smtp_server.to("first@example.org")) == len(smtp_server.to("third@example.org"))
    with engine_services.sessions() as session:
        enrollment = session.get_one(Enrollment, pending)
        assert enrollment.confirmation_sent_at == clock()
        assert enrollment.pending_message_id is None and enrollment.lease_owner is None
        assert enrollment.due_at is None
        (event,) = session.scalars(
            select(Event).where(
                Event.enrollment_id == pending, Event.kind == EventKind.CONFIRMATION_SENT
            )
        )
        assert event.detail == confirmation.message["Message-ID"]
        assert event.at == clock()
