"""Courses that continue into others: `on_complete: {enroll: ...}` starts the next course in
the next window; `{offer: ...}` sends one email whose link enrolls once, however often it
is clicked; nobody is chained twice, and a reader who left everything never is."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from drip.app import create_app
from drip.audience.leaving import unsubscribe
from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import Enrollment
from tests.conftest import TESTS, enroll, make_settings
from tests.smtp import SmtpServer

NEXT = """title: "Next course"
promise: "Two more lessons after the tiny one."
sender: "Tiny Author <author@example.org>"
timezone: America/New_York
send_window: {start: "09:00", end: "11:00"}
"""


def library_with(tmp_path: Path, on_complete: str) -> Path:
    folder = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", folder)
    (folder / "tiny" / "sequence.yaml").write_text(
        (folder / "tiny" / "sequence.yaml").read_text() + on_complete
    )
    nxt = folder / "next-course"
    nxt.mkdir()
    (nxt / "sequence.yaml").write_text(NEXT)
    (nxt / "01-hello.md").write_text('---\nsubject: "Next: hello"\ndelay: 0\n---\nHello.\n')
    (nxt / "02-more.md").write_text(
        '---\nsubject: "Next: more"\ndelay: 2d\n---\nMore. [Leave]({{ unsubscribe_url }})\n'
    )
    return folder


def make_app(
    tmp_path: Path, url: str, smtp: SmtpServer, clock: FrozenClock, on_complete: str
) -> Flask:
    app = create_app(
        make_settings(
            tmp_path, url, smtp_url=smtp.url, sequences_dir=library_with(tmp_path, on_complete)
        ),
        clock=clock,
    )
    app.config["TESTING"] = True
    return app


@pytest.fixture
def enroll_app(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Flask]:
    app = make_app(
        tmp_path, backend_url, smtp_server, clock, "on_complete: {enroll: next-course}\n"
    )
    yield app
    app.extensions["drip"].engine.dispose()


def finish_tiny(svc: Services, clock: FrozenClock, email: str = "ada@example.org") -> None:
    """A confirmed reader of tiny, who finishes it as the test runs its passes."""
    enroll(svc, email, first_name="Ada")


def run_days(svc: Services, clock: FrozenClock, days: int) -> None:
    for _ in range(days * 2):
        svc.dispatcher().run_pass(clock())
        clock.advance(hours=12)


def test_finishing_a_course_with_enroll_starts_the_next_one_once(
    enroll_app: Flask, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    svc: Services = enroll_app.extensions["drip"]
    finish_tiny(svc, clock)
    run_days(svc, clock, 12)

    subjects = [m.subject for m in smtp_server.to("ada@example.org")]
    assert subjects == ["Welcome, Ada", "Lesson two", "Lesson three", "Next: hello", "Next: more"]
    hello = smtp_server.to("ada@example.org")[3]
    assert "or because you finished “Tiny course,” which continues into it" in hello.text()
    with svc.sessions() as session:
        rows = session.scalars(select(Enrollment).order_by(Enrollment.id)).all()
        assert [(e.sequence, e.status) for e in rows] == [
            ("tiny", "completed"),
            ("next-course", "completed"),
        ]


def test_a_reader_already_in_the_next_course_is_not_enrolled_twice(
    enroll_app: Flask, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    svc: Services = enroll_app.extensions["drip"]
    finish_tiny(svc, clock, "ada@example.org")
    with svc.sessions() as session:
        subscribe(
            session,
            svc.content.library(),
            "next-course",
            "ada@example.org",
            clock(),
            consent=Consent(source="test", text="yes"),
            confirmed=True,
        )
        session.commit()
    run_days(svc, clock, 12)

    subjects = [m.subject for m in smtp_server.to("ada@example.org")]
    assert subjects.count("Next: hello") == 1 and "Lesson three" in subjects
    with svc.sessions() as session:
        assert len(session.scalars(select(Enrollment)).all()) == 2


def test_a_reader_who_left_everything_is_never_chained(
    enroll_app: Flask, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    svc: Services = enroll_app.extensions["drip"]
    lesson = svc.settings.sequences_dir / "next-course" / "02-more.md"
    text = lesson.read_text()
    lesson.write_text(text.replace("More.", "More {{ typo }}."))  # the next course is broken
    finish_tiny(svc, clock)
    run_days(svc, clock, 12)  # tiny is finished; chaining waits for the next course
    with svc.sessions() as session:
        tiny = session.scalars(select(Enrollment)).one()
        assert tiny.status == "completed" and tiny.chained_at is None
        unsubscribe(session, tiny.id, clock(), everything=True, how="test")
        session.commit()
    lesson.write_text(text)  # fixed
    run_days(svc, clock, 3)

    assert "Next: hello" not in [m.subject for m in smtp_server.to("ada@example.org")]
    with svc.sessions() as session:
        assert [e.sequence for e in session.scalars(select(Enrollment))] == ["tiny"]


def test_an_offer_sends_one_email_whose_link_enrolls_once_however_often_it_is_clicked(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    app = make_app(tmp_path, sqlite_url, smtp_server, clock, "on_complete: {offer: next-course}\n")
    svc: Services = app.extensions["drip"]
    finish_tiny(svc, clock)
    run_days(svc, clock, 8)

    offers = [
        m for m in smtp_server.to("ada@example.org") if m.subject == "What comes after Tiny course"
    ]
    assert len(offers) == 1
    link = re.search(r"http://drip\.test(/offer/\S+)", offers[0].text())
    assert link
    web = app.test_client()
    page = web.get(link[1])
    assert page.status_code == 200 and "Yes, send me that course" in page.text
    with svc.sessions() as session:
        assert len(session.scalars(select(Enrollment)).all()) == 1  # a GET starts nothing
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    for _ in range(3):
        assert web.post(link[1], data={"csrf_token": token[1]}).status_code == 200
    run_days(svc, clock, 1)

    subjects = [m.subject for m in smtp_server.to("ada@example.org")]
    assert subjects.count("Next: hello") == 1
    with svc.sessions() as session:
        assert [e.sequence for e in session.scalars(select(Enrollment))] == ["tiny", "next-course"]
    app.extensions["drip"].engine.dispose()
