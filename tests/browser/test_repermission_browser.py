"""The re-permission email's "Keep them coming" in Debian's Chromium: the link opens a
page with one button, and pressing it keeps the reader. Screenshots go to
artifacts/screenshots/reader/."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drip.core.clock import FrozenClock
from drip.store.models import Engagement
from tests.conftest import courses_beside_tiny, enroll, screenshot, serving
from tests.dispatch.test_repermission import QUESTION, daily_course, reader, run_days
from tests.smtp import SmtpServer

pytestmark = pytest.mark.browser


def test_a_reader_keeps_the_emails_coming_with_one_button(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, page: Any
) -> None:
    clock = FrozenClock(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))
    folder = courses_beside_tiny(tmp_path, {"daily": daily_course()})
    with serving(
        tmp_path, sqlite_url, clock, smtp_url=smtp_server.url, sequences_dir=folder
    ) as server:
        svc = server.services
        enroll(svc, "ada@example.org", "daily")
        run_days(svc, clock, 8)
        (question,) = [m for m in smtp_server.to("ada@example.org") if m.subject == QUESTION]
        found = re.search(r"(http://127\.0\.0\.1:\d+/keep/[A-Za-z0-9._-]+)", question.text())
        assert found, question.text()
        for width in (375, 1280):
            page.set_viewport_size({"width": width, "height": 800})
            page.goto(found[1])
            assert page.get_by_role("button", name="Keep them coming").is_visible()
            screenshot(page, "reader", f"keep-{width}")
        assert reader(svc).engagement == Engagement.QUIET  # opening it changed nothing
        page.get_by_role("button", name="Keep them coming").click()
        page.wait_for_selector("h1:has-text('keep coming')")
        assert reader(svc).engagement == Engagement.ENGAGED
