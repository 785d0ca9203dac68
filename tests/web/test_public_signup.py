"""The sign-up page: what it shows, what a sign-up stores, and that it answers the same for
every address. Also the fixtures the other test_public_* files import."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from werkzeug.test import TestResponse

from drip.app import create_app
from drip.core.clock import FrozenClock
from drip.core.config import PROJECT_ROOT, Settings
from drip.services import Services
from drip.store.models import Base, ConsentRecord, Enrollment, Event, SignUpRequest, Subscriber
from tests.conftest import make_settings, take_in
from tests.smtp import SmtpServer

BLOG = "https://blog.example.org"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) test"


@pytest.fixture
def public_settings(tmp_path: Path, backend_url: str, smtp_server: SmtpServer) -> Settings:
    """On SQLite and PostgreSQL. No DNS on the test machine, so the domain check is off (it
    has its own test)."""
    return make_settings(
        tmp_path,
        backend_url,
        smtp_url=smtp_server.url,
        check_email_domain=False,
        cors_origins=(BLOG,),
    )


@pytest.fixture
def public_app(public_settings: Settings, clock: FrozenClock) -> Iterator[Flask]:
    application = create_app(public_settings, clock=clock)
    application.config["TESTING"] = True
    yield application
    application.extensions["drip"].engine.dispose()


@pytest.fixture
def web(public_app: Flask) -> FlaskClient:
    client = public_app.test_client()
    client.environ_base.update(REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT=BROWSER_UA)
    return client


@pytest.fixture
def svc(public_app: Flask) -> Services:
    services: Services = public_app.extensions["drip"]
    return services


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match[1]


def sign_up(
    web: FlaskClient, slug: str = "tiny", *, ip: str | None = None, **fields: str
) -> TestResponse:
    """Fill the form as a browser would: fetch the page (session + token), then post."""
    page = web.get(f"/subscribe/{slug}")
    data = {
        "csrf_token": csrf_token(page.text),
        "email": "ada@example.org",
        "first_name": "Ada",
        "consent": "yes",
        "timezone": "Europe/Paris",
        **fields,
    }
    environ = {"REMOTE_ADDR": ip} if ip else None
    return web.post(f"/subscribe/{slug}", data=data, environ_overrides=environ)


def open_confirmation(web: FlaskClient, path: str) -> TestResponse:
    """What a person does with the confirmation link: open the page, press its button."""
    page = web.get(path)
    assert page.status_code == 200, page.text
    return web.post(path, data={"csrf_token": csrf_token(page.text)})


def snapshot(engine: Engine, skip: tuple[str, ...] = ("rate_limits",)) -> dict[str, Any]:
    """Every row of every table (bar `skip`): to show that a request changed nothing."""
    with engine.connect() as conn:
        return {
            table.name: conn.execute(text(f'SELECT * FROM "{table.name}" ORDER BY 1')).all()
            for table in Base.metadata.sorted_tables
            if table.name not in skip
        }


def test_page_shows_title_promise_consent_and_a_plain_form(web: FlaskClient) -> None:
    page = web.get("/subscribe/tiny")

    assert page.status_code == 200
    assert "<h1>Tiny course</h1>" in page.text
    assert "Three short lessons to test the engine." in page.text
    assert "Yes, send me this email course. I can unsubscribe with one click" in page.text
    assert re.search(r'<form method="post" action="/subscribe/tiny"', page.text)
    assert 'name="email" type="email"' in page.text
    assert '<label for="drip-email">Email address</label>' in page.text
    assert 'name="timezone"' in page.text and 'name="website"' in page.text
    assert 'name="exam_date"' not in page.text  # tiny asks for no extra fields


def test_page_of_a_sequence_with_signup_fields_asks_exam_date_and_responsibilities(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    app = create_app(
        make_settings(
            tmp_path, sqlite_url, sequences_dir=PROJECT_ROOT / "sequences", check_email_domain=False
        ),
        clock=clock,
    )
    page = app.test_client().get("/subscribe/usmle-insider-kit")

    assert page.status_code == 200
    assert 'name="exam_date" type="date"' in page.text
    assert page.text.count('name="responsibilities"') == 3
    app.extensions["drip"].engine.dispose()


def test_a_sign_up_is_queued_then_taken_in_as_a_pending_enrollment_with_the_consent_shown(
    web: FlaskClient, svc: Services, clock: FrozenClock
) -> None:
    signed_up_at = clock()
    answer = sign_up(web)

    assert answer.status_code == 303
    assert answer.headers["Location"] == "/subscribe/tiny/thanks"
    assert "Check your inbox" in web.get(answer.headers["Location"]).text
    with svc.sessions() as session:  # the request stored one row and nothing else
        queued = session.scalars(select(SignUpRequest)).one()
        assert (queued.email, queued.sequence, queued.received_at) == (
            "ada@example.org",
            "tiny",
            signed_up_at,
        )
        assert session.scalars(select(Subscriber)).all() == []

    clock.advance(minutes=3)  # the worker's next pass
    assert take_in(svc).taken == 1

    with svc.sessions() as session:  # every time stored is the sign-up's, not the worker's
        assert session.scalars(select(SignUpRequest)).all() == []
        subscriber = session.scalars(select(Subscriber)).one()
        assert (subscriber.email, subscriber.first_name, subscriber.timezone) == (
            "ada@example.org",
            "Ada",
            "Europe/Paris",
        )
        enrollment = session.scalars(select(Enrollment)).one()
        assert (enrollment.status, enrollment.due_at) == ("pending", signed_up_at)
        consent = session.scalars(select(ConsentRecord)).one()
        assert consent.consent_text == (
            "Yes, send me this email course. I can unsubscribe with one click at any time."
        )
        assert (consent.ip, consent.user_agent) == ("203.0.113.7", BROWSER_UA)
        assert consent.source == "sign-up page /subscribe/tiny"
        assert consent.created_at == signed_up_at


def test_the_dispatcher_sends_the_confirmation_with_a_working_link(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    sign_up(web)
    svc.dispatcher().run_pass(clock())

    (message,) = smtp_server.to("ada@example.org")
    assert message.subject == "Please confirm: Tiny course"
    link = re.search(r"http://drip\.test(/confirm/\S+)", message.text())
    assert link
    assert "You're in!" in open_confirmation(web, link[1]).text
    with svc.sessions() as session:
        assert session.scalars(select(Enrollment.status)).one() == "active"


def test_without_a_browser_time_zone_the_sequence_default_is_used(
    web: FlaskClient, svc: Services
) -> None:
    sign_up(web, timezone="")
    sign_up(web, email="bob@example.org", timezone="Not/AZone")
    take_in(svc)

    with svc.sessions() as session:
        assert set(session.scalars(select(Subscriber.timezone))) == {"America/New_York"}


def test_signing_up_again_answers_the_same_and_resends_at_most_every_five_minutes(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    first = sign_up(web)
    svc.dispatcher().run_pass(clock())
    clock.advance(minutes=2)
    again = sign_up(web)
    svc.dispatcher().run_pass(clock())

    assert (again.status_code, again.headers["Location"], again.data) == (
        first.status_code,
        first.headers["Location"],
        first.data,
    )
    assert len(smtp_server.to("ada@example.org")) == 1  # two minutes: not re-sent
    clock.advance(minutes=3)
    sign_up(web)
    svc.dispatcher().run_pass(clock())
    assert len(smtp_server.to("ada@example.org")) == 2
    with svc.sessions() as session:
        assert (
            session.scalar(select(Subscriber.id).where(Subscriber.email != "ada@example.org"))
            is None
        )
        assert len(session.scalars(select(ConsentRecord)).all()) == 3


def test_an_active_reader_signing_up_again_gets_the_same_answer_and_no_email(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    new = sign_up(web, email="new@example.org")
    sign_up(web)
    svc.dispatcher().run_pass(clock())
    confirm = re.search(
        r"http://drip\.test(/confirm/\S+)", smtp_server.to("ada@example.org")[0].text()
    )
    assert confirm
    open_confirmation(web, confirm[1])
    svc.dispatcher().run_pass(clock())  # the welcome lesson
    before = len(smtp_server.messages)

    known = sign_up(web)
    svc.dispatcher().run_pass(clock())

    assert (known.status_code, known.headers["Location"]) == (
        new.status_code,
        new.headers["Location"],
    )
    assert len(smtp_server.messages) == before
    with svc.sessions() as session:
        assert (
            session.scalar(
                select(Enrollment.status)
                .join(Subscriber)
                .where(Subscriber.email == "ada@example.org")
            )
            == "active"
        )


def test_extra_answers_are_stored_in_the_subscriber_attributes(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    app = create_app(
        make_settings(
            tmp_path, sqlite_url, sequences_dir=PROJECT_ROOT / "sequences", check_email_domain=False
        ),
        clock=clock,
    )
    client = app.test_client()

    answer = sign_up(client, "usmle-insider-kit", exam_date="2026-09-15", responsibilities="2+")
    bad = sign_up(client, "usmle-insider-kit", email="bob@example.org", exam_date="soon")

    assert answer.status_code == 303
    assert bad.status_code == 400 and "exam date" in bad.text
    take_in(app.extensions["drip"])
    with app.extensions["drip"].sessions() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.attributes == {"exam_date": "2026-09-15", "responsibilities": "2+"}
    app.extensions["drip"].engine.dispose()


def test_an_unknown_sequence_is_a_404_page(web: FlaskClient) -> None:
    answer = web.get("/subscribe/no-such-course")

    assert answer.status_code == 404
    assert "Page not found" in answer.text


def test_without_consent_nothing_is_stored_and_the_form_says_why(
    web: FlaskClient, svc: Services
) -> None:
    before = snapshot(svc.engine)
    answer = sign_up(web, consent="")

    assert answer.status_code == 400
    assert "Please tick the box" in answer.text
    assert 'value="ada@example.org"' in answer.text  # what the reader typed is kept
    assert snapshot(svc.engine) == before


def test_events_record_the_sign_up_source(web: FlaskClient, svc: Services) -> None:
    sign_up(web)
    take_in(svc)

    with svc.sessions() as session:
        event = session.scalars(select(Event)).one()
        assert (event.kind, event.detail) == ("signed_up", "sign-up page /subscribe/tiny")


def test_the_answers_reach_the_study_schedule_in_the_pdf(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    """The form's exam date and responsibilities, as stored, are what drip.content.magnets reads."""
    from io import BytesIO

    from pypdf import PdfReader

    app = create_app(
        make_settings(
            tmp_path, sqlite_url, sequences_dir=PROJECT_ROOT / "sequences", check_email_domain=False
        ),
        clock=clock,
    )
    svc: Services = app.extensions["drip"]
    client = app.test_client()
    sign_up(client, "usmle-insider-kit", exam_date="2027-03-15", responsibilities="2+")
    take_in(svc)
    with svc.sessions() as session:
        enrollment_id = session.scalars(select(Enrollment.id)).one()

    pdf = client.get(svc.links.magnet_url(enrollment_id).removeprefix("http://drip.test"))

    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    text = " ".join((page.extract_text() or "") for page in PdfReader(BytesIO(pdf.data)).pages)
    assert "Your exam: Mon 15 Mar 2027" in " ".join(text.split())
    assert "two or more other responsibilities" in " ".join(text.split())
    svc.engine.dispose()


def test_pages_keep_tokens_out_of_referers_and_refuse_frames(web: FlaskClient) -> None:
    for answer in (web.get("/subscribe/tiny"), web.get("/confirm/forged")):
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["X-Frame-Options"] == "DENY"
