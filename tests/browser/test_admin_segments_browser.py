"""The Segments form in Debian's Chromium: ticked and typed fields, the count before saving,
the saved segment on the list, its readers one click away, and a delete that asks first;
at 375 px nothing is wider than the screen. Screenshots go to artifacts/screenshots/admin/."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from drip.audience import segments
from drip.store.models import Subscriber
from tests.browser.test_admin_browser import log_in
from tests.conftest import LiveServer, enroll, screenshot, tag
from tests.web.test_admin_access import add_operator

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 800}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    """Three readers of the tiny course, two with the tag has-dates, one of those with an
    exam in May."""
    svc = live_server.services
    add_operator(svc)
    for email in ("ada@example.org", "bo@example.org", "cy@example.org"):
        enroll(svc, email)
    tag(svc, "ada@example.org", "has-dates")
    tag(svc, "bo@example.org", "has-dates")
    with svc.sessions() as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == "ada@example.org")
            .values(attributes={"exam_date": "2026-05-04"})
        )
        session.commit()
    return live_server


def test_the_segment_form_counts_before_saving_and_the_list_leads_to_its_readers(
    page: Any, server: LiveServer
) -> None:
    page.set_viewport_size(DESKTOP)
    log_in(page, server)
    page.wait_for_selector("h1:text('Dashboard')")
    page.click("nav.wide a:text('Segments')")
    page.click("#new-segment")
    page.wait_for_selector("#segment-form")
    page.fill("#name", "exam-soon")
    page.check("input[name=sequences][value=tiny]")
    page.check("input[name=status][value=active]")
    page.fill("#tags", "has-dates")
    page.fill("#exam_before", "2026-09-01")
    with page.expect_navigation():  # the count's whole section, not its first tag
        page.click("#count-button")
    page.wait_for_selector("#segment-count")

    counted = page.text_content("#segment-count")
    assert "1 reader now" in counted and "ada@example.org" in counted
    assert "readers of tiny, active, tagged has-dates, exam before 2026-09-01" in counted
    assert page.input_value("#name") == "exam-soon"  # the form is kept to be saved
    assert page.is_checked("input[name=status][value=active]")
    screenshot(page, "admin", "segments-1280")

    page.click("#save-button")
    page.wait_for_selector("tr[data-segment=exam-soon]")
    row = page.locator("tr[data-segment=exam-soon]")
    page.wait_for_selector("tr[data-segment=exam-soon] td[data-count]:text-is('1')")
    screenshot(page, "admin", "segments-list-1280")
    with server.services.sessions() as session:
        assert segments.named(session, "exam-soon").definition == {
            "exam_before": "2026-09-01",
            "sequences": ["tiny"],
            "status": ["active"],
            "tags": ["has-dates"],
        }
    with page.expect_navigation():  # every row of the readers' table
        row.locator("a:text('See these readers')").click()
    page.wait_for_selector("#segment-shown")
    assert page.locator("table tbody tr").count() == 1
    assert "ada@example.org" in page.text_content("table tbody")

    page.set_viewport_size(PHONE)
    page.goto(f"{server.url}/admin/segments/exam-soon/edit")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "admin", "segments-375")
    page.goto(f"{server.url}/admin/segments/")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]

    questions: list[str] = []

    def answer(dialog: Any) -> None:
        questions.append(dialog.message)
        if len(questions) == 1:
            dialog.dismiss()
        else:
            dialog.accept()

    page.on("dialog", answer)
    page.click("tr[data-segment=exam-soon] button:text('Delete')")
    assert page.locator("tr[data-segment=exam-soon]").count() == 1  # dismissed: kept
    with page.expect_navigation():  # the list below the flash, whole, before counting rows
        page.click("tr[data-segment=exam-soon] button:text('Delete')")
    page.wait_for_selector("text=Segment exam-soon deleted.")
    assert questions[0].startswith("Delete the segment exam-soon?")
    assert page.locator("tr[data-segment=exam-soon]").count() == 0


def test_count_the_readers_works_before_the_segment_has_a_good_name(
    page: Any, server: LiveServer
) -> None:
    name = "Exam soon"  # half thought of: not yet a name a segment may have
    page.set_viewport_size(DESKTOP)
    log_in(page, server)
    page.goto(f"{server.url}/admin/segments/new")
    page.fill("#name", name)
    page.fill("#tags", "has-dates")
    with page.expect_navigation():  # the count's whole section, not its first tag
        page.click("#count-button")
    page.wait_for_selector("#segment-count", timeout=5_000)
    assert "2 readers now" in page.text_content("#segment-count")
    assert page.input_value("#name") == name
