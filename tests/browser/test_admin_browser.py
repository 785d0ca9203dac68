"""The operator's page in Debian's Chromium: log in, watch a delivery arrive, retry a failed
one, pause a sequence, import with a progress bar. Screenshots go to
artifacts/screenshots/admin/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from drip.audience.leaving import unsubscribe
from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.core.config import PROJECT_ROOT
from drip.jobs.worker import import_job, magnet_job
from drip.ops.operators import FAILED_PER_ACCOUNT
from drip.services import Services
from drip.store.models import Delivery, Enrollment, Subscriber
from tests.conftest import LiveServer, screenshot, serving
from tests.smtp import SmtpServer
from tests.web.test_admin_access import OPERATOR, PASSWORD, add_operator, fill

pytestmark = pytest.mark.browser

COURSES = PROJECT_ROOT / "sequences"


def sign_up(svc: Services, email: str, name: str = "Ada", *, confirmed: bool = True) -> int:
    with svc.sessions() as session:
        enrollment = subscribe(
            session,
            svc.content.library(),
            "tiny",
            email,
            svc.clock(),
            consent=Consent(source="blog sidebar form", text="Yes, please.", ip="192.0.2.44"),
            first_name=name,
            timezone="America/New_York",
            confirmed=confirmed,
        )
        session.commit()
        return enrollment.id


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    add_operator(live_server.services)
    return live_server


@pytest.fixture
def strict_server(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[LiveServer]:
    """One transient SMTP failure is enough to fail a delivery (DRIP_MAX_ATTEMPTS=1)."""
    with serving(tmp_path, sqlite_url, clock, smtp_url=smtp_server.url, max_attempts=1) as live:
        add_operator(live.services)
        yield live


def log_in(page: Any, server: LiveServer, password: str = PASSWORD) -> None:
    page.goto(f"{server.url}/admin/login")
    page.fill("#email", OPERATOR)
    page.fill("#password", password)
    with page.expect_navigation():  # to the landing page's load: callers read it at once
        page.click("button[type=submit]")


def reader_url(server: LiveServer, email: str) -> str:
    with server.services.sessions() as session:
        found = session.scalar(select(Subscriber.id).where(Subscriber.email == email))
    return f"{server.url}/admin/readers/{found}"


def history(svc: Services, smtp_server: SmtpServer, clock: FrozenClock, days: int) -> None:
    """Three weeks of a small list: sign-ups every day, a pass every six hours, a few
    addresses that bounce and a few readers who leave; the clock ends where it started."""
    end = clock()
    clock.set(end - timedelta(days=days))
    dispatcher = svc.dispatcher()
    for day in range(days):
        for n in range(2 + (day * 7) % 5):
            address = f"reader{day}.{n}@example.org"
            if (day + n) % 9 == 4:
                smtp_server.answer(address, "550 5.1.1 user unknown")
            enrollment = sign_up(svc, address, f"Reader {n}")
            if (day + n) % 7 == 5:
                clock.advance(minutes=1)
                with svc.sessions() as session:
                    unsubscribe(session, enrollment, clock())
                    session.commit()
        for _ in range(4):
            dispatcher.run_pass(clock())
            clock.advance(hours=6)
    clock.set(end)


@pytest.mark.slow
def test_a_delivery_just_made_appears_on_the_dashboard_and_the_readers_page(
    page: Any, server: LiveServer, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    history(server.services, smtp_server, clock, days=21)
    for email, name in [
        ("alan@example.org", "Alan"),
        ("edsger@example.org", "Edsger"),
        ("grace@example.org", "Grace"),
    ]:
        clock.advance(minutes=7)
        sign_up(server.services, email, name)
    sign_up(server.services, "pending@example.org", "Barbara", confirmed=False)
    server.services.dispatcher().run_pass(clock())
    assert smtp_server.to("grace@example.org")
    with server.services.sessions() as session:
        sent_last_hour = len(
            session.scalars(
                select(Delivery).where(Delivery.sent_at > clock() - timedelta(hours=1))
            ).all()
        )
    log_in(page, server)
    page.wait_for_selector("h1:text('Dashboard')")
    assert page.text_content("#sent-hour") == str(sent_last_hour)
    assert "Scheduler alive." in page.text_content(".health")
    assert "grace@example.org" in page.locator("#latest tbody tr").first.text_content()
    assert page.locator("#daily svg.chart rect.sent title").count() == 30
    screenshot(page, "admin", "dashboard")

    with page.expect_navigation():  # the timeline below the h1, whole
        page.click("a:text('grace@example.org')")
    page.wait_for_selector("h1:text('grace@example.org')")
    timeline = page.text_content(".timeline")
    with server.services.sessions() as session:
        message_id = session.scalars(
            select(Delivery.message_id)
            .join(Enrollment)
            .join(Subscriber)
            .where(Subscriber.email == "grace@example.org")
        ).one()
    assert f"Message-ID {message_id}" in timeline
    assert "Consent recorded" in timeline and "blog sidebar form" in timeline
    assert "Lesson “Lesson two” due" in page.text_content(".why")
    screenshot(page, "admin", "reader")

    page.click("nav a:text('Readers')")
    page.fill("#q", "reader2")
    with page.expect_navigation():  # the search's results, not the list before it
        page.click("button:text('Search')")
    addresses = page.locator("tbody td:first-child a").all_text_contents()
    assert addresses and all("reader2" in a for a in addresses)
    screenshot(page, "admin", "readers-search")


def test_a_failed_delivery_is_retried_from_the_page_and_reaches_the_smtp_server(
    page: Any, strict_server: LiveServer, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    smtp_server.answer("grace@example.org", "451 4.3.2 system not accepting messages")
    sign_up(strict_server.services, "grace@example.org", "Grace")
    strict_server.services.dispatcher().run_pass(clock())
    assert smtp_server.messages == []
    log_in(page, strict_server)
    page.goto(f"{strict_server.url}/admin/deliveries?status=failed")
    assert "451 4.3.2 system not accepting messages" in page.text_content("table")
    screenshot(page, "admin", "deliveries-failed")
    page.goto(reader_url(strict_server, "grace@example.org"))
    assert "Paused: gave up after 1 attempts" in page.text_content(".why")
    page.click("button:text('Retry lesson welcome')")
    page.wait_for_selector(".flash.ok")
    strict_server.services.dispatcher().run_pass(clock())
    assert [m.subject for m in smtp_server.to("grace@example.org")] == ["Welcome, Grace"]
    page.reload()
    assert "sent" in page.text_content(".timeline")
    assert "Lesson “Lesson two” due" in page.text_content(".why")


def test_pausing_a_sequence_makes_the_next_pass_skip_it(
    page: Any, server: LiveServer, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(server.services, "grace@example.org", "Grace")
    log_in(page, server)
    page.goto(f"{server.url}/admin/sequences/tiny")
    page.click("button:text('Pause the whole sequence')")
    page.wait_for_selector("h1 .badge.paused")
    screenshot(page, "admin", "sequence-paused")
    report = server.services.dispatcher().run_pass(clock())
    assert report.outcomes == [] and smtp_server.messages == []
    page.goto(reader_url(server, "grace@example.org"))
    assert "the sequence is paused by an operator" in page.text_content(".why")
    page.goto(f"{server.url}/admin/sequences/tiny")
    page.click("button:text('Resume sending')")
    page.wait_for_selector(".flash.ok")
    server.services.dispatcher().run_pass(clock())
    assert [m.subject for m in smtp_server.messages] == ["Welcome, Grace"]


def test_a_wrong_password_is_refused_and_repeated_tries_are_throttled(
    page: Any, server: LiveServer
) -> None:
    log_in(page, server, password="not the password")
    assert "Wrong email or password." in page.text_content("[role=alert]")
    for attempt in range(FAILED_PER_ACCOUNT - 1):
        log_in(page, server, password=f"guess number {attempt}")
    log_in(page, server)  # the right password, too late
    assert "Too many failed logins" in page.text_content("[role=alert]")
    screenshot(page, "admin", "login-throttled")
    page.goto(f"{server.url}/admin/")
    assert page.url.startswith(f"{server.url}/admin/login")


@pytest.mark.slow
def test_logged_out_every_admin_url_leads_to_the_login_page(page: Any, server: LiveServer) -> None:
    rules = [
        r
        for r in server.app.url_map.iter_rules()
        if r.rule.startswith("/admin")
        and "GET" in (r.methods or ())
        and r.endpoint != "admin.auth.login"
    ]
    assert len(rules) >= 10
    for rule in rules:
        page.goto(server.url + fill(rule.rule))
        assert page.url.startswith(f"{server.url}/admin/login"), rule.rule
        assert page.locator("h1").text_content() == "Log in"


@pytest.fixture
def courses_server(tmp_path: Path, sqlite_url: str, clock: FrozenClock) -> Iterator[LiveServer]:
    """The real courses of sequences/, for a preview that looks like what readers get."""
    with serving(tmp_path, sqlite_url, clock, sequences_dir=COURSES) as live:
        add_operator(live.services)
        yield live


def test_a_lesson_preview_shows_the_email_with_sample_data(
    page: Any, courses_server: LiveServer
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, courses_server)
    page.goto(f"{courses_server.url}/admin/sequences/networking-tips")
    with page.expect_navigation():  # to the load: the srcdoc frames rendered
        page.click("tr:has-text('what-contacts-mean') a:text('Edit')")
    frame = page.frame_locator("iframe.email.desktop")
    body = frame.locator("body").text_content()
    assert "Unsubscribe" in body and "{{" not in body
    assert page.text_content("pre.text").count("/sample/preview/unsubscribe") == 1
    screenshot(page, "admin", "lesson-preview")


@pytest.mark.slow
def test_csv_import_fills_the_progress_bar_and_reports_bad_lines(
    page: Any, server: LiveServer, tmp_path: Path
) -> None:
    rows = [f"reader{n}@example.org,Reader {n}," for n in range(250)]
    rows[120] = "not-an-address,Nobody,"
    path = tmp_path / "readers.csv"
    path.write_text("email,first_name,timezone\n" + "\n".join(rows) + "\n")
    log_in(page, server)
    page.goto(f"{server.url}/admin/import")
    page.set_input_files("#file", str(path))
    page.fill("#source", "conference sign-up sheet")
    page.click("button:text('Import')")
    page.wait_for_selector("#import-status")
    assert "Waiting for the worker" in page.text_content("#import-status")
    import_job(server.services)  # the scheduler's import job; the page reloads itself
    page.wait_for_selector("#import-result .flash.ok", timeout=15_000)
    assert page.text_content("#import-result .flash") == "Imported 249 readers; 1 row skipped."
    assert re.match(
        r"line 122: 'not-an-address' is not a valid email", page.text_content("#import-result li")
    )
    assert page.eval_on_selector("#import-bar", "b => [b.value, b.max]") == [250, 250]
    screenshot(page, "admin", "import")
    with server.services.sessions() as session:
        assert len(session.scalars(select(Subscriber)).all()) == 249


@pytest.mark.slow
def test_a_lead_magnet_rebuild_ends_with_each_pdfs_first_page_on_its_page(
    page: Any, server: LiveServer
) -> None:
    log_in(page, server)
    page.goto(f"{server.url}/admin/sequences/tiny")
    page.click("a:text('magnet.md')")
    page.click("button:text('Rebuild the PDF')")
    assert "Waiting for the worker" in page.text_content("#magnet-status")
    magnet_job(server.services)  # the scheduler's build job; the page reloads itself
    # A reload during the build may show its last step (with the images already saved); the
    # one after the build shows it done.
    page.wait_for_selector("#magnet-status:has-text('Rebuilt')", timeout=15_000)
    page.wait_for_function(  # both first pages fetched, whether they drew or were refused
        "() => { const i = document.querySelectorAll('#magnet-a4 img, #magnet-letter img');"
        " return i.length === 2 && [...i].every(img => img.complete); }"
    )
    assert page.eval_on_selector("#magnet-bar", "b => [b.value, b.max]") == [3, 3]
    for size, ratio in (("a4", 841.89 / 595.28), ("letter", 792 / 612)):
        wide, high = page.eval_on_selector(
            f"#magnet-{size} img", "i => [i.naturalWidth, i.naturalHeight]"
        )  # loaded under the Content-Security-Policy, in the page size's proportions
        assert wide == 800 and abs(high / wide - ratio) < 0.005
    screenshot(page, "admin", "magnet-build")


@pytest.mark.slow
def test_a_broadcast_written_in_the_browser_shows_its_progress_live_as_it_goes_out(
    page: Any, server: LiveServer, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    for email in ("ada@example.org", "bo@example.org", "cy@example.org"):
        sign_up(server.services, email)
    page.on("dialog", lambda dialog: dialog.accept())  # "Schedule this broadcast for 3 readers?"
    log_in(page, server)
    page.goto(f"{server.url}/admin/broadcasts/")
    page.fill("#subject", "News")
    page.fill("#body", 'Hi {{ first_name|default("there") }}, a new post is up.')
    page.check("input[name=to][value=tiny]")
    with page.expect_navigation():  # to the load: the frame rendered, broadcast.js has run
        page.click("#broadcast-form button[type=submit]")
    page.wait_for_selector("#audience-count:text('3')")
    assert (
        "Hi Alex, a new post is up."
        in page.frame_locator("iframe.email").locator("body").inner_text()
    )
    assert page.input_value("#zone")  # the browser's time zone, filled in by broadcast.js
    page.select_option("#zone", "UTC")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_selector("#progress [data-count=queued]:text('3')")
    screenshot(page, "admin", "broadcast-scheduled")

    clock.advance(hours=1)  # the readers' send window opens (09:00 in New York)
    server.services.dispatcher().run_pass(clock())

    page.wait_for_selector("#progress [data-count=sent]:text('3')", timeout=10_000)
    page.wait_for_selector("#broadcast-status:text('done')", timeout=10_000)
    assert page.eval_on_selector("progress[data-key=sent]", "bar => bar.value") == 3
    assert page.locator("#cancel-form").count() == 0  # gone out to everyone: nothing to cancel
    assert sorted(r for m in smtp_server.messages if m.subject == "News" for r in m.recipients) == [
        "ada@example.org",
        "bo@example.org",
        "cy@example.org",
    ]
    screenshot(page, "admin", "broadcast-sent")
