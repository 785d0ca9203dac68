"""The admin at a glance and on a phone, in Debian's Chromium: at 375 px the navigation is a
menu, nothing is wider than the screen, tables scroll inside their cards; the charts' text
stays at least 12 px at both widths and their tables hold the bars' numbers; a bulk action
goes through its confirmation and, when large, its progress page by itself. Screenshots go
to artifacts/screenshots/admin/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from drip.audience import bulk
from drip.core.clock import FrozenClock
from drip.jobs.worker import import_job
from drip.ops import audit
from drip.store.models import Enrollment, EnrollmentStatus, Subscriber
from tests.browser.test_admin_browser import history, log_in
from tests.conftest import LiveServer, screenshot
from tests.smtp import SmtpServer
from tests.web.test_admin_access import add_operator

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 800}
DESKTOP = {"width": 1280, "height": 900}
WIDEST = "() => document.documentElement.scrollWidth"


@pytest.fixture
def server(live_server: LiveServer, smtp_server: SmtpServer, clock: FrozenClock) -> LiveServer:
    """Ten days of a small list: sends, a few failures and readers who left."""
    add_operator(live_server.services)
    history(live_server.services, smtp_server, clock, days=10)
    return live_server


def some_reader(server: LiveServer) -> int:
    with server.services.sessions() as session:
        found = session.scalar(select(func.min(Subscriber.id)))
    assert found is not None
    return int(found)


@pytest.mark.slow
def test_at_375_px_the_navigation_is_a_menu_that_opens_and_nothing_spills_sideways(
    page: Any, server: LiveServer
) -> None:
    page.set_viewport_size(PHONE)
    log_in(page, server)
    page.wait_for_selector("h1:text('Dashboard')")

    assert not page.is_visible("nav.wide")
    assert not page.is_visible(".menu nav a:text('Readers')")
    page.click(".menu summary")
    assert page.is_visible(".menu nav a:text('Readers')")
    assert page.is_visible(".menu button:text('Log out')")
    screenshot(page, "admin", "phone-menu-open")
    page.click(".menu nav a:text('Readers')")
    page.wait_for_selector("h1:text('Readers')")
    assert not page.is_visible(".menu nav")  # a new page starts with the menu closed

    for path in (
        "/admin/",
        "/admin/readers",
        f"/admin/readers/{some_reader(server)}",
        "/admin/sequences",
        "/admin/sequences/tiny",
        "/admin/site",
        "/admin/deliveries",
    ):
        page.goto(f"{server.url}{path}")
        assert page.evaluate(WIDEST) <= PHONE["width"], path
        header = page.evaluate("() => document.querySelector('.topbar').scrollWidth")
        assert header <= PHONE["width"], path


def test_at_375_px_a_wide_table_scrolls_inside_its_card(page: Any, server: LiveServer) -> None:
    page.set_viewport_size(PHONE)
    log_in(page, server)
    page.goto(f"{server.url}/admin/readers")
    box = page.evaluate(
        """() => {
          const scroller = document.querySelector('.card .scroll');
          const card = scroller.closest('.card').getBoundingClientRect();
          const own = scroller.getBoundingClientRect();
          return {table: scroller.querySelector('table').scrollWidth, width: scroller.clientWidth,
                  overflow: getComputedStyle(scroller).overflowX,
                  inside: own.left >= card.left && own.right <= card.right};
        }"""
    )
    assert box["table"] > box["width"]  # the table is wider than the phone...
    assert box["overflow"] == "auto" and box["inside"]  # ...and scrolls within its card
    page.evaluate("() => document.querySelector('.card .scroll').scrollLeft = 500")
    assert page.evaluate("() => document.querySelector('.card .scroll').scrollLeft") > 0
    page.evaluate("() => document.querySelector('.card .scroll').scrollLeft = 0")
    screenshot(page, "admin", "readers-375")
    page.set_viewport_size(DESKTOP)
    screenshot(page, "admin", "readers-1280")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375", "1280"])
def test_chart_labels_stay_readable_and_the_tables_hold_the_bars_numbers(
    page: Any, server: LiveServer, viewport: dict[str, int]
) -> None:
    page.set_viewport_size(viewport)
    log_in(page, server)
    page.wait_for_selector("h1:text('Dashboard')")
    sizes = page.evaluate(
        """() => [...document.querySelectorAll(
                  '.bars .label, .bars .value, .y-ticks li, .x-ticks li, .legend span')]
                 .map(e => parseFloat(getComputedStyle(e).fontSize))"""
    )
    assert sizes and min(sizes) >= 12

    funnel = page.evaluate(
        """() => [...document.querySelectorAll('figure.bars')].map(f => ({
          bars: [...f.querySelectorAll('ol li')].map(li => [
            li.querySelector('.label').textContent.trim(),
            li.querySelector('.value').firstChild.textContent.trim()]),
          table: [...f.querySelectorAll('tbody tr')].map(tr => [
            tr.querySelector('th').textContent.trim(),
            tr.querySelector('td').textContent.trim()])}))"""
    )
    assert funnel and all(f["bars"] == f["table"] for f in funnel)
    with server.services.sessions() as session:
        signed_up = session.scalar(select(func.count()).select_from(Enrollment))
        left = session.scalar(
            select(func.count()).where(Enrollment.status == EnrollmentStatus.UNSUBSCRIBED)
        )
    steps = dict(funnel[0]["table"])
    assert steps["Signed up"] == f"{signed_up:,}" and steps["Unsubscribed"] == f"{left:,}"

    daily = page.evaluate(
        """() => ({
          bars: [...document.querySelectorAll('#daily rect.sent title')].map(t => t.textContent),
          table: [...document.querySelectorAll('#daily tbody tr')].map(tr =>
            tr.querySelector('th').textContent + ': ' + tr.querySelector('td').textContent
            + ' sent')})"""
    )
    assert len(daily["bars"]) == 30 and daily["bars"] == daily["table"]
    name = "375" if viewport is PHONE else "1280"
    page.click("#daily summary")  # the numbers open under the chart
    assert page.is_visible("#daily table")
    screenshot(page, "admin", f"dashboard-{name}")


@pytest.mark.slow
def test_a_large_bulk_action_confirms_its_number_and_goes_on_by_itself_to_the_end(
    page: Any, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "BATCH", 3)
    monkeypatch.setattr(bulk, "BUDGET", 0.0)  # a request per batch: the progress page shows
    with server.services.sessions() as session:
        active = session.scalar(
            select(func.count()).where(Enrollment.status == EnrollmentStatus.ACTIVE)
        )
    assert active and active > 6
    page.set_viewport_size(PHONE)
    log_in(page, server)
    page.goto(f"{server.url}/admin/readers?status=active")
    page.select_option("#action", "pause")
    with page.expect_navigation():  # the sentence's <strong> parsed, not just its <p>
        page.click("button:text('Next: confirm')")
    sentence = page.text_content("#bulk-sentence")
    assert (
        f"This will pause {active} enrollments of every sequence, with status active." in sentence
    )
    screenshot(page, "admin", "bulk-confirm-375")
    page.click("button:text('Yes, pause')")
    page.wait_for_selector(".flash.ok")
    assert page.text_content(".flash.ok") == (
        f"Paused {active} enrollments of every sequence, with status active."
    )
    with server.services.sessions() as session:
        assert not session.scalar(
            select(func.count()).where(Enrollment.status == EnrollmentStatus.ACTIVE)
        )


FITS = """() => {
  const wide = document.scrollingElement.scrollWidth;
  const out = [...document.querySelectorAll('main button, main a.button, main summary')]
    .filter(b => b.offsetParent !== null)
    .map(b => [b.textContent.trim(), b.getBoundingClientRect()])
    .filter(([, r]) => r.left < 0 || r.right > innerWidth)
    .map(([text, r]) => `${text} at ${Math.round(r.left)}..${Math.round(r.right)}`);
  return {wide, inner: innerWidth, out};
}"""


def test_at_375_px_the_lessons_and_the_audit_log_fit_with_every_button_on_screen(
    page: Any, server: LiveServer
) -> None:
    svc = server.services
    with svc.sessions() as session:  # a studio save's entry, with what changed
        before = '---\nsubject: "Lesson two"\ndelay: 2d\n---\nThe second lesson.\n'
        after = before.replace("Lesson two", "Lesson two, renamed on a phone " + "y" * 80)
        target = "tiny/02-second-with-a-long-name-" + "z" * 60 + ".md"
        audit.record(session, "ops@example.org", "save lesson", target, svc.clock(), before, after)
        session.commit()
    page.set_viewport_size(PHONE)
    log_in(page, server)
    for path in ("/admin/sequences/tiny", "/admin/audit"):
        page.goto(f"{server.url}{path}")
        fits = page.evaluate(FITS)
        assert fits["wide"] <= fits["inner"], path
        assert fits["out"] == [], path
    page.click("table.audit summary")
    fits = page.evaluate(FITS)
    assert fits["wide"] <= fits["inner"] and fits["out"] == []
    screenshot(page, "admin", "audit-375")
    page.goto(f"{server.url}/admin/sequences/tiny")
    screenshot(page, "admin", "lessons-375")


def test_the_import_result_wraps_a_long_refused_address_at_1280_px(
    page: Any, server: LiveServer, tmp_path: Path
) -> None:
    page.set_viewport_size(DESKTOP)
    refused = "not-an-address-" + "x" * 300 + "-example.org"
    path = tmp_path / "readers.csv"
    path.write_text(f"email,first_name\nreader@example.org,Ada\n{refused},Nobody\n")
    log_in(page, server)
    page.goto(f"{server.url}/admin/import")
    page.set_input_files("#file", str(path))
    page.fill("#source", "a conference sheet")
    page.click("button:text('Import')")
    page.wait_for_selector("#import-status")
    import_job(server.services)
    page.wait_for_selector("#import-result .flash.ok", timeout=15_000)
    page.wait_for_load_state()  # the last reload, laid out with its stylesheet, before FITS
    assert refused in page.text_content("#import-result li")
    fits = page.evaluate(FITS)
    assert fits["wide"] <= fits["inner"] and fits["out"] == []
    screenshot(page, "admin", "import-long-address-1280")
