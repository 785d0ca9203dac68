"""Roles in Debian's Chromium: an owner adds a viewer on the Operators page, and the viewer
sees the admin without its buttons and is refused a forged POST. Screenshots go to
artifacts/screenshots/roles/."""

from __future__ import annotations

from typing import Any

import pytest

from drip.store.models import Role
from drip.store.queries import paused_sequences
from tests.conftest import LiveServer, enroll, screenshot
from tests.ops.test_roles import OWNER, add
from tests.web.test_admin_access import PASSWORD

pytestmark = pytest.mark.browser

VIEWER = "reader.of.stats@example.org"


def log_in(page: Any, server: LiveServer, email: str, password: str) -> None:
    page.goto(f"{server.url}/admin/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_selector(".who")


def test_an_owner_adds_a_viewer_who_sees_no_buttons_and_is_refused_a_forged_post(
    page: Any, live_server: LiveServer
) -> None:
    svc = live_server.services
    add(svc, OWNER, Role.owner)
    enroll(svc)
    log_in(page, live_server, OWNER, PASSWORD)
    page.click("nav >> text=Operators")
    page.fill("#email", VIEWER)
    page.select_option("#role", "viewer")
    page.click("button:text('Add')")
    password = page.text_content("#new-password").strip()
    screenshot(page, "admin", "roles-viewer-added")
    with page.expect_navigation():  # the row's every cell, and the whole page for content()
        page.click("nav >> text=Audit log")
    newest = page.text_content("table.audit tbody tr")
    assert "owner@example.org" in newest and "operators: add" in newest and VIEWER in newest
    assert password not in page.content()
    screenshot(page, "admin", "roles-audit-log")
    page.click(".who button:text('Log out')")

    log_in(page, live_server, VIEWER, password)
    assert page.text_content(".who .badge") == "viewer"
    assert page.locator("nav >> text=Operators").count() == 0
    assert page.locator("nav >> text=Audit log").count() == 0
    page.click("nav >> text=Readers")
    with page.expect_navigation():  # the whole page, before looking for buttons that are gone
        page.click("a:text('ada@example.org')")
    page.wait_for_selector("h1:has-text('ada@example.org')")
    screenshot(page, "admin", "roles-viewer-reader-page")
    buttons = [b.strip() for b in page.locator("main button").all_text_contents()]
    assert buttons == [], buttons  # no suppress, pause, restart or erase
    page.goto(f"{live_server.url}/admin/sequences/tiny")
    assert page.locator("main form[method=post]").count() == 0

    # A form made in the page by hand, with the viewer's own CSRF token: refused by role.
    with page.expect_navigation() as answer:
        page.evaluate(
            """() => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = "/admin/sequences/tiny/pause";
                const token = document.querySelector("input[name=csrf_token]").cloneNode();
                form.appendChild(token);
                document.body.appendChild(form);
                form.submit();
            }"""
        )
    assert answer.value.status == 403
    assert page.text_content("h1") == "Not allowed for your role"
    assert "Sequences: pause or resume needs the owner role" in page.text_content("main")
    screenshot(page, "admin", "roles-viewer-refused")
    with svc.sessions() as session:
        assert paused_sequences(session) == set()
