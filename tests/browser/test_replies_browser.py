"""The Replies page in Debian's Chromium: what the reader wrote shown, the quoted message
folded until asked for, nothing wider than a phone, and Mark done through its button.
Screenshots go to artifacts/screenshots/admin/."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drip.core.clock import FrozenClock
from tests.browser.test_admin_browser import log_in
from tests.conftest import LiveServer, screenshot, serving
from tests.deliverability.test_bounces import sign_up
from tests.smtp import SmtpServer
from tests.web.test_admin_access import add_operator

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 800}
POSTMARK = "postmark:inbound-password"


@pytest.fixture
def server(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[LiveServer]:
    with serving(
        tmp_path,
        sqlite_url,
        clock,
        smtp_url=smtp_server.url,
        reply_address="reply@drip.test",
        postmark_auth=POSTMARK,
    ) as live:
        add_operator(live.services)
        sign_up(live.services, "ada@example.org")
        live.services.dispatcher().run_pass(clock())
        (welcome,) = smtp_server.messages
        answer = live.app.test_client().post(
            "/webhooks/postmark/inbound",
            json={
                "FromFull": {"Email": "ada@example.org"},
                "ToFull": [{"Email": welcome.message["Reply-To"]}],
                "Subject": "Re: Welcome, Ada",
                "TextBody": "This helped a lot, thank you.\n\nOn Sun, Tiny Author wrote:\n> Hi Ada",
                "MessageID": "browser-1",
            },
            headers={"Authorization": "Basic " + base64.b64encode(POSTMARK.encode()).decode()},
        )
        assert answer.get_json()["status"] == "matched"
        yield live


def test_a_reply_shows_what_the_reader_wrote_folds_the_quote_and_is_marked_done(
    page: Any, server: LiveServer
) -> None:
    page.set_viewport_size(PHONE)
    log_in(page, server)
    page.goto(f"{server.url}/admin/replies")
    page.wait_for_selector("h1:text('Replies')")
    assert page.is_visible(".reply-text:text('This helped a lot, thank you.')")
    assert page.inner_text(".reply .lesson") == "“Welcome, friend”"  # the lesson's subject
    assert not page.is_visible(".reply details pre")  # the quoted message is folded
    page.click(".reply details summary")
    assert page.is_visible(".reply details pre")
    assert "> Hi Ada" in page.inner_text(".reply details pre")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "admin", "replies-phone")
    with page.expect_navigation():  # the reply below the flash, parsed
        page.click("button:text('Mark done')")
    page.wait_for_selector(".flash:text('Marked done')")
    assert page.is_visible(".reply .badge:text('done')")
    assert not page.is_visible("button:text('Mark done')")
