"""The confirmation's one reminder: a sign-up unconfirmed a day later gets exactly one, however
many passes run; a confirmed one none; its link confirms; the sign-up still expires after
DRIP_CONFIRM_DAYS."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.core.clock import FrozenClock
from drip.dispatch.report import OutcomeStatus, PassReport
from drip.services import Services, build_services
from drip.store.models import Enrollment, EnrollmentStatus, Event, EventKind
from tests.conftest import enroll, make_settings
from tests.smtp import SmtpServer
from tests.web.test_public_signup import open_confirmation

CONFIRM = "Please confirm: Tiny course"
REMINDER = "Did you mean to sign up for Tiny course?"


@pytest.fixture
def svc(app: Flask) -> Services:
    """The services of the app `client` talks to (SQLite)."""
    services: Services = app.extensions["drip"]
    return services


def passes(svc: Services, clock: FrozenClock, hours: int, every: int = 2) -> list[PassReport]:
    """A pass every `every` hours for `hours`; their reports."""
    dispatcher = svc.dispatcher()
    reports = []
    for _ in range(hours // every):
        reports.append(dispatcher.run_pass(clock()))
        clock.advance(hours=every)
    return reports


def reminded(svc: Services) -> int:
    with svc.sessions() as session:
        kinds = session.scalars(select(Event.kind)).all()
    return kinds.count(EventKind.CONFIRMATION_REMINDED)


def test_an_unconfirmed_sign_up_gets_exactly_one_reminder_a_day_later(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, backend_url, smtp_url=smtp_server.url), clock)
    signed_up = clock()
    enroll(svc, confirmed=False)

    passes(svc, clock, hours=23)
    assert [m.subject for m in smtp_server.to("ada@example.org")] == [CONFIRM]
    passes(svc, clock, hours=24 * 5)  # well past the day, short of DRIP_CONFIRM_DAYS (7)

    subjects = [m.subject for m in smtp_server.to("ada@example.org")]
    assert subjects == [CONFIRM, REMINDER]
    assert reminded(svc) == 1
    with svc.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        assert enrollment.status == EnrollmentStatus.PENDING
        assert enrollment.confirm_reminded_at is not None
        assert enrollment.confirm_reminded_at >= signed_up + timedelta(hours=24)
    passes(svc, clock, hours=48)  # past DRIP_CONFIRM_DAYS: expired, and still one reminder
    with svc.sessions() as session:
        assert session.scalars(select(Enrollment.status)).one() == EnrollmentStatus.EXPIRED
    assert [m.subject for m in smtp_server.to("ada@example.org")] == [CONFIRM, REMINDER]
    svc.engine.dispose()


def test_a_confirmed_sign_up_gets_no_reminder(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enroll(svc)
    passes(svc, clock, hours=24 * 3)

    assert REMINDER not in [m.subject for m in smtp_server.to("ada@example.org")]
    assert reminded(svc) == 0


def test_a_sign_up_confirmed_within_the_day_gets_no_reminder(
    client: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enroll(svc, confirmed=False)
    passes(svc, clock, hours=4)
    link = confirm_link(smtp_server.to("ada@example.org")[0].text())
    assert open_confirmation(client, link).status_code == 200
    passes(svc, clock, hours=24 * 2)

    assert REMINDER not in [m.subject for m in smtp_server.to("ada@example.org")]


def test_the_reminders_link_confirms_the_sign_up(
    client: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enroll(svc, confirmed=False, first_name="Ada")
    passes(svc, clock, hours=26)
    (message,) = [m for m in smtp_server.to("ada@example.org") if m.subject == REMINDER]
    assert "Did you mean to sign up?" in message.text()
    assert "it is the only reminder" in message.text()

    page = open_confirmation(client, confirm_link(message.text()))
    svc.dispatcher().run_pass(clock())

    assert page.status_code == 200 and "You're in!" in page.text
    with svc.sessions() as session:
        assert session.scalars(select(Enrollment.status)).one() == EnrollmentStatus.ACTIVE
    assert smtp_server.to("ada@example.org")[-1].subject == "Welcome, Ada"


def test_a_reminder_the_relay_refuses_for_now_is_sent_by_a_later_pass_once(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enroll(svc, confirmed=False)
    passes(svc, clock, hours=24)
    smtp_server.answer("ada@example.org", "451 4.3.0 try again later")
    reports = passes(svc, clock, hours=24)

    tries = [o.status for r in reports for o in r.outcomes if o.lesson == "confirm-reminder"]
    assert tries == [OutcomeStatus.RETRYING, OutcomeStatus.SENT]

    assert [m.subject for m in smtp_server.to("ada@example.org")] == [CONFIRM, REMINDER]
    assert reminded(svc) == 1


def confirm_link(text: str) -> str:
    """The path of the confirm link in a message's plain text."""
    match = re.search(r"http://drip\.test(/confirm/\S+?)(?=[\s>)\]]|$)", text)
    assert match, text
    return match[1]


def test_a_reminder_once_sent_is_not_listed_again_by_the_dry_run(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enroll(svc, confirmed=False)
    passes(svc, clock, hours=26)
    assert reminded(svc) == 1

    dry = svc.dispatcher().run_pass(clock(), dry_run=True)

    assert [o for o in dry.outcomes if o.lesson == "confirm-reminder"] == []


def test_the_dry_run_lists_a_due_reminder_and_marks_nothing(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enroll(svc, confirmed=False)
    svc.dispatcher().run_pass(clock())
    clock.advance(hours=25)

    dry = svc.dispatcher().run_pass(clock(), dry_run=True)
    real = svc.dispatcher().run_pass(clock())

    assert [(o.lesson, o.status) for o in dry.outcomes] == [
        ("confirm-reminder", OutcomeStatus.WOULD_SEND)
    ]
    assert [(o.lesson, o.status) for o in real.outcomes] == [
        ("confirm-reminder", OutcomeStatus.SENT)
    ]


def test_a_reader_who_signs_up_again_after_expiring_may_be_reminded_of_the_new_sign_up(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enroll(svc, confirmed=False)
    passes(svc, clock, hours=24 * 8)  # reminded once, then expired
    enroll(svc, confirmed=False)  # a new sign-up
    passes(svc, clock, hours=24 * 2)

    subjects = [m.subject for m in smtp_server.to("ada@example.org")]
    assert subjects == [CONFIRM, REMINDER, CONFIRM, REMINDER]
    assert reminded(svc) == 2
