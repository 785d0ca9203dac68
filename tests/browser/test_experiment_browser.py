"""An experiment in Chromium: the sequence page and the experiment page fit a phone, and
the author promotes the winner with one button (through its confirmation) on a desktop.
Screenshots go to artifacts/screenshots/admin/."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drip.core.clock import FrozenClock
from tests.browser.test_admin_browser import log_in
from tests.conftest import LiveServer, enroll, screenshot, serving
from tests.smtp import SmtpServer
from tests.web.test_admin_access import add_operator
from tests.web.test_experiment_page import BROWSER, COURSE, SUBJECT_B, git

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 800}
WIDEST = "() => document.documentElement.scrollWidth"


@pytest.fixture
def server(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[LiveServer]:
    """The small-talk course under test, 240 readers sent its first lesson (over 100 a
    variant, as the rule asks), b's readers clicking more often than a's."""
    root = tmp_path / "sequences"
    (root / "talk").mkdir(parents=True)
    for name, text in COURSE.items():
        (root / "talk" / name).write_text(text)
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "The course")
    with serving(
        tmp_path, sqlite_url, clock, smtp_url=smtp_server.url, sequences_dir=root
    ) as server:
        svc = server.services
        add_operator(svc)
        for number in range(240):
            enroll(svc, f"reader{number}@example.org", "talk")
        svc.dispatcher().run_pass(clock())
        clock.advance(hours=1)
        rng = random.Random(3)
        web = server.app.test_client()
        for message in smtp_server.messages:
            if rng.random() < (0.5 if message.subject == SUBJECT_B else 0.1):
                link = re.search(r"http://127\.0\.0\.1:\d+(/l/\S+?)\)", message.text())
                assert link is not None
                web.get(link[1], headers=BROWSER)
        yield server


@pytest.mark.slow
def test_the_experiment_fits_a_phone_and_one_button_promotes_the_winner(
    page: Any, server: LiveServer
) -> None:
    page.set_viewport_size(PHONE)
    log_in(page, server)
    page.wait_for_selector("h1:text('Dashboard')")
    for path in ("/admin/sequences/talk", "/admin/sequences/talk/lessons/hello/experiment"):
        page.goto(f"{server.url}{path}")
        assert page.evaluate(WIDEST) <= PHONE["width"], path
    screenshot(page, "admin", "experiment-phone")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{server.url}/admin/sequences/talk")
    assert "Call it: variant b is the best." in page.inner_text("#experiments")
    screenshot(page, "admin", "sequence-experiments")
    with page.expect_navigation():  # to the load: Promote's confirmation needs admin.js
        page.click("#experiments a.button")
    page.wait_for_selector("h1:text('Experiment on')")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():  # the whole page, before looking for what is gone
        page.click("button:text('Promote b')")
    page.wait_for_selector("text=Variant b is now the lesson for every reader to come.")
    lesson = server.services.settings.sequences_dir / "talk" / "01-hello.md"
    assert f'subject: "{SUBJECT_B}"' in lesson.read_text()
    assert "variants" not in lesson.read_text()
    assert "#experiments" not in page.content() and page.query_selector("#experiments") is None
