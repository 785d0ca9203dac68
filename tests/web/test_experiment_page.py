"""An experiment on a lesson, end to end: 400 readers through the real dispatch pass, their
clicks through the real tracked links, the experiment page's figures, and the author's one
button that promotes the winner into the lesson file as a git commit."""

from __future__ import annotations

import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.app import create_app
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import Delivery
from tests.conftest import CHEAP_HASHER, enroll, make_settings
from tests.smtp import SmtpServer
from tests.web.test_admin_access import OPERATOR, add_operator, csrf_token, log_in

BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605.1", "Accept": "text/html,*/*"}
READERS = 400
SUBJECT_A = "Five ways into small talk"
SUBJECT_B = "The small-talk trick nobody teaches"
COURSE = {
    "sequence.yaml": (
        'title: "Small talk"\npromise: "Talk to anyone."\n'
        'sender: "Ada <ada@example.org>"\ntimezone: UTC\n'
        'send_window:\n  start: "00:00"\n  end: "23:59"\n'
        "double_opt_in: false\ntrack_links: true\n"
    ),
    "01-hello.md": (
        f'---\nsubject: "{SUBJECT_A}"\ndelay: 0\ngoal: click\n'
        f'variants:\n  b:\n    subject: "{SUBJECT_B}"\n---\n'
        "Hello {{ first_name }}. Read [the guide](https://blog.example.org/guide) first.\n"
    ),
    "02-next.md": '---\nsubject: "Next"\ndelay: 2d\n---\nThe next lesson.\n',
}


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=Setup", "-c", "user.email=setup@x.org", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def course_app(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Flask]:
    """The course above, alone in a sequences folder that is a git repository."""
    root = tmp_path / "sequences"
    (root / "talk").mkdir(parents=True)
    for name, text in COURSE.items():
        (root / "talk" / name).write_text(text)
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "The course")
    settings = make_settings(
        tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=root, batch_size=500
    )
    app = create_app(settings, clock=clock, password_hasher=CHEAP_HASHER)
    app.config["TESTING"] = True
    yield app
    app.extensions["drip"].engine.dispose()


def run_course(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock, rates: dict[str, float], seed: int
) -> None:
    """READERS readers get the first lesson from the real dispatch pass; a reader of each
    subject opens its tracked link with the rate given for it, an hour later."""
    svc: Services = app.extensions["drip"]
    for number in range(READERS):
        enroll(svc, f"reader{number}@example.org", "talk")
    for _ in range(5):
        svc.dispatcher().run_pass(clock())
        if len(smtp_server.messages) >= READERS:
            break
    assert len(smtp_server.messages) == READERS
    clock.advance(hours=1)
    rng = random.Random(seed)
    web = app.test_client()
    for message in smtp_server.messages:
        rate = rates["b" if message.subject == SUBJECT_B else "a"]
        if rng.random() < rate:
            link = re.search(r"http://drip\.test(/l/\S+?)\)", message.text())
            assert link is not None
            assert web.get(link[1], headers=BROWSER).status_code == 302


def best(page: str, variant: str, row: str = "variant-{}") -> float:
    """The chance shown for `variant` ("over 99.9%" reads as 0.999)."""
    found = re.search(
        rf'id="{row.format(variant)}".*?class="num best"[^>]*>[a-z ]*([\d.]+)%', page, re.S
    )
    assert found is not None, page
    return float(found[1]) / 100


def version_shown(page: str) -> str:
    found = re.search(r'name="version" value="([^"]+)"', page)
    assert found is not None
    return found[1]


@pytest.fixture
def author(course_app: Flask) -> FlaskClient:
    add_operator(course_app.extensions["drip"])
    web = course_app.test_client()
    assert log_in(web).status_code == 302
    return web


def test_a_subject_that_doubles_clicks_is_called_and_its_promotion_writes_the_file(
    course_app: Flask, author: FlaskClient, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    run_course(course_app, smtp_server, clock, {"a": 0.15, "b": 0.30}, seed=1)
    svc: Services = course_app.extensions["drip"]
    with svc.sessions() as session:
        recorded = session.scalars(select(Delivery.variant)).all()
    assert set(recorded) == {"a", "b"}
    assert 170 < recorded.count("b") < 230  # about half each

    sequence_page = author.get("/admin/sequences/talk").text
    assert "/admin/sequences/talk/lessons/hello/experiment" in sequence_page
    assert best(sequence_page, "b", row="experiment-hello-{}") > 0.95
    assert "Call it: variant b is the best." in sequence_page
    assert "each has at least 100 readers" in sequence_page
    page = author.get("/admin/sequences/talk/lessons/hello/experiment").text
    assert best(page, "b") > 0.95
    assert "Call it: variant b is the best." in page
    assert "each has at least 100 readers" in page

    answer = author.post(
        "/admin/sequences/talk/lessons/hello/experiment/promote",
        data={
            "csrf_token": csrf_token(page),
            "variant": "b",
            "version": version_shown(page),
        },
    )
    assert answer.status_code == 302
    lesson = svc.settings.sequences_dir / "talk" / "01-hello.md"
    assert lesson.read_text() == (
        f'---\nsubject: "{SUBJECT_B}"\ndelay: 0\n---\n'
        "Hello {{ first_name }}. Read [the guide](https://blog.example.org/guide) first.\n"
    )
    assert git(lesson.parent, "log", "-1", "--format=%ae|%s").startswith(
        f"{OPERATOR}|Promote variant b of talk/01-hello.md"
    )
    assert git(lesson.parent, "status", "--porcelain").strip() == ""


def test_equal_subjects_are_not_called_through_the_real_pass(
    course_app: Flask, author: FlaskClient, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    run_course(course_app, smtp_server, clock, {"a": 0.15, "b": 0.15}, seed=2)
    page = author.get("/admin/sequences/talk/lessons/hello/experiment").text
    assert max(best(page, "a"), best(page, "b")) < 0.95
    assert "Not yet: no variant is clearly the best." in page
    assert "best with 99% probability and each has at least 100 readers" in page
    assert "Not 95%: between two equal variants luck alone reaches 95%" in page
    assert "Look as often as you like" in page
