"""What a careless author and a hostile visitor did to the reader pages (issue 10): each is
refused or survived, with a clear answer and nothing lost or changed."""
# ruff: noqa: F811  (the fixtures imported from test_public_signup are parameters here)

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.app import create_app
from drip.audience.leaving import suppress
from drip.audience.subscriptions import Consent, subscribe
from drip.content.embed import snippet
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import Enrollment, Event, SignUpRequest, Subscriber
from tests.conftest import TESTS, count, make_settings, take_in
from tests.smtp import SmtpServer
from tests.web.test_public_signup import (  # noqa: F401  (fixtures)
    BLOG,
    csrf_token,
    open_confirmation,
    public_app,
    public_settings,
    sign_up,
    snapshot,
    svc,
    web,
)


@pytest.fixture
def courses(tmp_path: Path) -> Path:
    """A copy of the test sequences that a test may break."""
    folder = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", folder)
    return folder


@pytest.fixture
def author_app(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock, courses: Path
) -> Iterator[Flask]:
    app = create_app(
        make_settings(
            tmp_path,
            backend_url,
            smtp_url=smtp_server.url,
            check_email_domain=False,
            cors_origins=(BLOG,),
            sequences_dir=courses,
        ),
        clock=clock,
    )
    app.config["TESTING"] = True
    yield app
    app.extensions["drip"].engine.dispose()


def break_a_lesson(courses: Path) -> None:
    lesson = courses / "tiny" / "02-second.md"
    lesson.write_text(
        lesson.read_text().replace(
            "with **bold** words", "for {{ firstname }}, with **bold** words"
        )
    )


# -- a content mistake never costs a sign-up ------------------------------------------------


def test_a_broken_sequence_keeps_its_sign_up_page_form_and_api_and_its_sign_ups_wait(
    author_app: Flask, courses: Path, clock: FrozenClock
) -> None:
    svc: Services = author_app.extensions["drip"]
    web = author_app.test_client()
    with author_app.app_context():
        form = snippet(svc.content.library().sequences["tiny"], "http://drip.test", "test-secret")
    token = re.search(r'name="embed_token" value="([^"]+)"', form)
    assert token
    break_a_lesson(courses)
    assert svc.content.library().get("tiny") is None  # broken: nothing is sent from it

    page = web.get("/subscribe/tiny")
    posted = web.post(
        "/subscribe/tiny",
        data={"csrf_token": csrf_token(page.text), "email": "ada@example.org", "consent": "yes"},
    )
    embedded = web.post(
        "/subscribe/tiny",
        data={"embed_token": token[1], "consent": "yes", "email": "bob@example.org"},
        headers={"Origin": BLOG},
    )
    api = web.post(
        "/api/subscriptions",
        json={"email": "cy@example.org", "sequence": "tiny", "consent": True},
        headers={"Origin": BLOG},
    )

    assert page.status_code == 200 and "Tiny course" in page.text
    assert posted.status_code == 303 and embedded.status_code == 303
    assert api.status_code == 202
    assert count(svc, SignUpRequest) == 3
    held = take_in(svc)
    assert held.taken == 0 and len(held.held) == 3  # they wait, with the reason
    assert count(svc, SignUpRequest) == 3


def test_only_a_sequence_that_does_not_exist_is_a_404_and_the_api_names_the_real_ones(
    web: FlaskClient,
) -> None:
    assert web.get("/subscribe/no-such-course").status_code == 404
    answer = web.post(
        "/api/subscriptions", json={"email": "a@example.org", "sequence": "nope", "consent": True}
    )
    assert answer.status_code == 404
    assert answer.get_json()["error"] == {
        "code": "unknown_sequence",
        "message": 'unknown sequence: give the slug of a course, one of "tiny"',
        "field": "sequence",
    }


def test_a_quote_and_markup_in_a_title_are_shown_as_text_in_the_confirmation(
    author_app: Flask, courses: Path, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    settings = courses / "tiny" / "sequence.yaml"
    settings.write_text(
        settings.read_text()
        .replace('title: "Tiny course"', """title: 'The "tiny" <b>course</b>'""")
        .replace('title: "Tiny guide"', """title: 'The "guide" <i>itself</i>'""")
    )
    svc: Services = author_app.extensions["drip"]
    web = author_app.test_client()
    assert svc.content.library().get("tiny") is not None

    sign_up(web)
    report = svc.dispatcher().run_pass(clock())

    assert report.count("sent") == 1, report.summary()
    (message,) = smtp_server.to("ada@example.org")
    assert message.subject == 'Please confirm: The "tiny" <b>course</b>'
    assert "&lt;b&gt;course&lt;/b&gt;" in message.html() and "<b>course</b>" not in message.html()
    assert 'The "tiny" <b>course</b>' in message.text()


# -- suppression ------------------------------------------------------------------------------


def test_a_reader_cannot_lift_a_suppression_by_signing_up_again_and_confirming(
    web: FlaskClient, svc: Services, clock: FrozenClock
) -> None:
    with svc.sessions() as session:
        enrollment = subscribe(
            session,
            svc.content.library(),
            "tiny",
            "ada@example.org",
            clock(),
            consent=Consent(source="test", text="yes"),
        )
        session.flush()
        suppress(session, enrollment.subscriber, clock(), "blocked by an operator")
        session.commit()
        confirm_path = svc.links.confirm_url(enrollment.id).removeprefix("http://drip.test")
    sign_up(web)
    take_in(svc)

    open_confirmation(web, confirm_path)

    with svc.sessions() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.suppressed_at is not None
        assert subscriber.suppressed_reason == "blocked by an operator"
        assert session.scalars(select(Enrollment.status)).one() in ("pending", "suppressed")
        kinds = list(session.scalars(select(Event.kind).order_by(Event.id)))
        assert "confirm_refused" in kinds and "confirmed" not in kinds


# -- hostile input: 400 or 404, never 500, nothing changed ------------------------------------


def test_an_address_of_megabytes_is_refused_before_it_is_parsed(
    web: FlaskClient, svc: Services
) -> None:
    before = snapshot(svc.engine)
    answer = sign_up(web, email="a" * 300_000 + "@example.org")
    assert answer.status_code in (400, 413)
    assert snapshot(svc.engine) == before


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,
        '{"email": "a@example.org", "sequence": "tiny"'
        ', "consent": true, "pad": "' + "x" * 20_000 + '"}',
    ],
)
def test_the_json_api_refuses_deep_or_large_bodies_with_400(
    web: FlaskClient, svc: Services, body: str
) -> None:
    before = snapshot(svc.engine)
    answer = web.post("/api/subscriptions", data=body, content_type="application/json")
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_body"
    assert snapshot(svc.engine) == before


def test_a_first_name_with_a_lone_surrogate_is_refused_with_400(
    web: FlaskClient, svc: Services
) -> None:
    before = snapshot(svc.engine)
    body = json.dumps(
        {"email": "a@example.org", "sequence": "tiny", "consent": True, "first_name": "\ud800x"}
    )
    answer = web.post("/api/subscriptions", data=body, content_type="application/json")
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "invalid_field" and error["field"] == "first_name"
    assert "first name" in error["message"]
    assert snapshot(svc.engine) == before


def test_an_enrollment_id_past_any_integer_on_the_preferences_form_is_a_400(
    web: FlaskClient, svc: Services, clock: FrozenClock
) -> None:
    with svc.sessions() as session:
        enrollment = subscribe(
            session,
            svc.content.library(),
            "tiny",
            "ada@example.org",
            clock(),
            consent=Consent(source="test", text="yes"),
            confirmed=True,
        )
        session.commit()
        url = svc.links.preferences_url(enrollment.subscriber_id)
    page_path = url.removeprefix("http://drip.test")
    page = web.get(page_path)
    before = snapshot(svc.engine)
    answer = web.post(
        page_path,
        data={
            "csrf_token": csrf_token(page.text),
            "action": "leave",
            "enrollment": "9223372036854775808",
        },
    )
    assert answer.status_code == 400
    assert snapshot(svc.engine) == before


def test_an_idn_domain_is_stored_and_sent_as_punycode(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    sign_up(web, email="ada@bücher.example")
    take_in(svc)
    report = svc.dispatcher().run_pass(clock())

    assert report.count("sent") == 1, report.summary()
    assert smtp_server.to("ada@xn--bcher-kva.example")
    with svc.sessions() as session:
        assert session.scalars(select(Subscriber.email)).one() == "ada@xn--bcher-kva.example"
