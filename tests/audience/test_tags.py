"""Tags: from an embedded form (signed into it), the JSON sign-up, downloading the PDF and
the API; each on the timeline; a tag named in `exit_when` ends the course early."""
# ruff: noqa: F811  (the fixtures imported from test_public_signup are parameters here)

from __future__ import annotations

import re
import shutil
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.app import create_app
from drip.audience.tags import add_tags, tags_of
from drip.content.embed import snippet
from drip.content.lessons import LESSON_VARIABLES, check_variables
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import Enrollment, Event, Subscriber
from tests.conftest import TESTS, count, enroll, make_settings, take_in
from tests.smtp import SmtpServer
from tests.web.test_public_signup import (  # noqa: F401  (fixtures)
    BLOG,
    public_app,
    public_settings,
    snapshot,
    svc,
    web,
)


def embedded_token(app: Flask, tags: tuple[str, ...]) -> str:
    svc: Services = app.extensions["drip"]
    with app.app_context():
        form = snippet(
            svc.content.library().sequences["tiny"],
            "http://drip.test",
            svc.settings.secret_key,
            tags,
        )
    token = re.search(r'name="embed_token" value="([^"]+)"', form)
    assert token
    return token[1]


def tags_of_address(svc: Services, email: str) -> list[str]:
    with svc.sessions() as session:
        subscriber = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
        return tags_of(session, subscriber.id)


def test_an_embedded_forms_tags_reach_its_readers_and_cannot_be_chosen_by_a_visitor(
    public_app: Flask, web: FlaskClient, svc: Services
) -> None:
    token = embedded_token(public_app, ("from-blog", "interview-post"))
    answer = web.post(
        "/subscribe/tiny",
        data={"embed_token": token, "consent": "yes", "email": "ada@example.org"},
        headers={"Origin": BLOG},
    )
    assert answer.status_code == 303
    take_in(svc)
    assert tags_of_address(svc, "ada@example.org") == ["from-blog", "interview-post"]

    before = snapshot(svc.engine)
    forged = token.replace(token.split(".")[0], token.split(".")[0][:-2] + "AA")
    refused = web.post(
        "/subscribe/tiny",
        data={"embed_token": forged, "consent": "yes", "email": "eve@example.org"},
    )
    assert refused.status_code == 400
    assert snapshot(svc.engine) == before


def test_the_json_sign_up_takes_tags_and_refuses_ones_that_are_not(
    web: FlaskClient, svc: Services
) -> None:
    ok = web.post(
        "/api/subscriptions",
        json={"email": "bo@example.org", "sequence": "tiny", "consent": True, "tags": ["webinar"]},
    )
    bad = web.post(
        "/api/subscriptions",
        json={
            "email": "cy@example.org",
            "sequence": "tiny",
            "consent": True,
            "tags": ["no spaces"],
        },
    )
    assert ok.status_code == 202 and bad.status_code == 400
    take_in(svc)
    assert tags_of_address(svc, "bo@example.org") == ["webinar"]
    assert count(svc, Subscriber) == 1


def test_downloading_the_pdf_tags_the_reader(
    web: FlaskClient, svc: Services, clock: FrozenClock
) -> None:
    url = svc.links.magnet_url(enroll(svc)).removeprefix("http://drip.test")
    assert web.get(url, headers={"User-Agent": "Barracuda link scanner"}).status_code == 200
    assert tags_of_address(svc, "ada@example.org") == []  # a scanner fetched it
    assert web.get(url).status_code == 200  # the browser's user agent (the fixture's)
    assert tags_of_address(svc, "ada@example.org") == ["pdf-tiny"]


def test_a_tag_named_in_exit_when_ends_the_course_with_the_reason_on_the_timeline(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    folder = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", folder)
    yaml_file = folder / "tiny" / "sequence.yaml"
    yaml_file.write_text(yaml_file.read_text() + "exit_when: booked-a-call\n")
    app = create_app(
        make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=folder),
        clock=clock,
    )
    svc: Services = app.extensions["drip"]
    library = svc.content.library()
    enrollment_id = enroll(svc)
    svc.dispatcher().run_pass(clock())  # the welcome
    with svc.sessions() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        add_tags(session, subscriber, ["booked-a-call"], clock(), "api (crm)", library)
        session.commit()
    clock.advance(days=10)
    report = svc.dispatcher().run_pass(clock())

    assert report.count("sent") == 0
    assert [m.subject for m in smtp_server.to("ada@example.org")] == ["Welcome, friend"]
    with svc.sessions() as session:
        assert session.get(Enrollment, enrollment_id).status == "completed"  # type: ignore[union-attr]
        exited = session.scalars(select(Event.detail).where(Event.kind == "exited")).all()
        assert exited == ["reached the goal: tagged booked-a-call"]
    app.extensions["drip"].engine.dispose()


def test_a_tag_link_in_a_lesson_tags_the_reader_who_presses_its_button(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    folder = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", folder)
    welcome = folder / "tiny" / "01-welcome.md"
    welcome.write_text(
        welcome.read_text() + '\n[Yes, I have my interview dates]({{ tag_link("has-dates") }})\n'
    )
    app = create_app(
        make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=folder),
        clock=clock,
    )
    svc: Services = app.extensions["drip"]
    enroll(svc)
    svc.dispatcher().run_pass(clock())
    link = re.search(r"http://drip\.test(/t/\S+?)\)", smtp_server.messages[0].text())
    assert link
    web = app.test_client()

    page = web.get(link[1])  # a scanner opening it tags nobody
    assert page.status_code == 200 and tags_of_address(svc, "ada@example.org") == []
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    assert web.post(link[1], data={"csrf_token": token[1]}).status_code == 200

    assert tags_of_address(svc, "ada@example.org") == ["has-dates"]
    with svc.sessions() as session:
        assert session.scalars(select(Event.detail).where(Event.kind == "tagged")).all() == [
            "has-dates (link in tiny)"
        ]
    app.extensions["drip"].engine.dispose()


def test_a_tag_link_without_its_tag_is_a_problem_drip_check_names() -> None:
    problems = check_variables(
        'Go [here]({{ tag_link }}) or [there]({{ unsubscribe_url("x") }})',
        LESSON_VARIABLES,
        Path("01-a.md"),
        5,
    )
    assert [p.message for p in problems] == [
        'tag_link names its tag: {{ tag_link("has-dates") }}, up to 40 lowercase letters, '
        "digits and dashes",
        'unsubscribe_url takes no argument; only tag_link does: {{ tag_link("has-dates") }}',
    ]
