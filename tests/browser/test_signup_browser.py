"""A reader's whole path in Debian's Chromium: sign up, confirm from the email, download the
PDF, leave from a later lesson. Once on drip's own page, once through the form embedded in
another site (another loopback origin). Screenshots go to artifacts/screenshots/reader/."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from drip.app import create_app
from drip.content.embed import snippet
from drip.core.clock import FrozenClock
from drip.core.config import PROJECT_ROOT
from drip.store.models import Enrollment, Event, Subscriber
from tests.conftest import LiveServer, make_settings, screenshot
from tests.content.test_author import png
from tests.smtp import Received, SmtpServer, free_port

pytestmark = pytest.mark.browser

WIDTHS = (375, 1280)
TOKEN = r"[A-Za-z0-9_.\-]+"


class Blog:
    """Another site on another loopback port, serving one page that embeds the form."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def blog(tmp_path: Path) -> Iterator[Blog]:
    folder = tmp_path / "blog"
    folder.mkdir()
    site = Blog(folder)
    yield site
    site.stop()


def serve(
    tmp_path: Path,
    sqlite_url: str,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    sequences: Path,
    **overrides: Any,
) -> LiveServer:
    port = free_port()
    app = create_app(
        make_settings(
            tmp_path,
            sqlite_url,
            smtp_url=smtp_server.url,
            base_url=f"http://127.0.0.1:{port}",
            sequences_dir=sequences,
            check_email_domain=False,
            **overrides,
        ),
        clock=clock,
    )
    return LiveServer(app, port)


@pytest.fixture
def courses_server(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[LiveServer]:
    """drip with the real courses of sequences/ (the domain check off: no DNS here)."""
    server = serve(tmp_path, sqlite_url, smtp_server, clock, PROJECT_ROOT / "sequences")
    yield server
    server.stop()
    server.services.engine.dispose()


@pytest.fixture
def reader_page(browser: Any) -> Iterator[Any]:
    """A tab whose browser says it is in Berlin, to see the time zone reach drip."""
    context = browser.new_context(timezone_id="Europe/Berlin", accept_downloads=True)
    tab = context.new_page()
    yield tab
    context.close()


def link(message: Received, purpose: str) -> str:
    match = re.search(rf"https?://[^\s/]+/{purpose}/{TOKEN}", message.text())
    assert match, f"no {purpose} link in {message.subject!r}"
    return match[0]


def shots(page: Any, name: str) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        screenshot(page, "reader", f"{name}-{width}")


def download_from_email(page: Any, message: Received) -> bytes:
    """Open the lesson's HTML as a mail client would and click the PDF link in it."""
    url = link(message, "magnet")
    page.set_content(message.html())
    with page.expect_download() as info:
        page.locator(f'a[href="{url}"]').first.click()
    return Path(info.value.path()).read_bytes()


def run_until(
    server: LiveServer, clock: FrozenClock, smtp: SmtpServer, count: int, days: int = 10
) -> None:
    """Run a pass every hour of simulated time until `count` messages have arrived."""
    dispatcher = server.services.dispatcher()
    for _ in range(days * 24):
        dispatcher.run_pass(clock())
        if len(smtp.messages) >= count:
            return
        clock.advance(hours=1)


@pytest.mark.slow
def test_reader_signs_up_confirms_downloads_and_leaves(
    courses_server: LiveServer, reader_page: Any, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    page, server = reader_page, courses_server
    page.goto(f"{server.url}/subscribe/interview-questions")
    assert page.get_by_role("heading", level=1).inner_text() == (
        "Residency interview questions for IMGs"
    )
    shots(page, "signup")

    page.get_by_label("Email address").fill("ada@example.org")
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Yes, send me the free PDF").check()
    page.get_by_role("button", name="Send me the course").click()
    page.wait_for_url("**/subscribe/interview-questions/thanks")
    assert "Check your inbox" in page.content()
    shots(page, "check-inbox")

    server.services.dispatcher().run_pass(clock())
    (confirmation,) = smtp_server.to("ada@example.org")
    assert confirmation.subject == "Please confirm: Residency interview questions for IMGs"
    page.goto(link(confirmation, "confirm"))
    shots(page, "confirm")
    page.get_by_role("button", name="Confirm: send me the course").click()
    assert page.get_by_role("heading", level=1).inner_text() == "You're in!"
    shots(page, "confirmed")

    server.services.dispatcher().run_pass(clock())
    welcome = smtp_server.to("ada@example.org")[-1]
    assert welcome.subject == "Your residency interview questions PDF is here"
    pdf = download_from_email(page, welcome)
    assert pdf.startswith(b"%PDF")

    run_until(server, clock, smtp_server, count=3)
    later = smtp_server.to("ada@example.org")[-1]
    assert later.subject not in (confirmation.subject, welcome.subject)
    page.goto(link(later, "unsubscribe"))
    shots(page, "unsubscribe")
    page.get_by_role("button", name=re.compile("^Leave “")).click()
    assert page.get_by_role("heading", level=1).inner_text() == "You're unsubscribed"
    shots(page, "unsubscribed")

    received = len(smtp_server.messages)
    run_until(server, clock, smtp_server, count=received + 1, days=30)
    assert len(smtp_server.messages) == received  # no more lessons
    with server.services.sessions() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.timezone == "Europe/Berlin"  # from the browser, through the script
        assert session.scalars(select(Enrollment.status)).one() == "unsubscribed"
        kinds = list(session.scalars(select(Event.kind).order_by(Event.id)))
        assert kinds == [
            "signed_up",
            "confirmation_sent",
            "confirmed",
            "download",
            "tagged",
            "unsubscribed",
        ]  # downloading the PDF tags the reader


@pytest.mark.slow
def test_the_form_embedded_in_another_site_and_the_json_endpoint_work(
    tmp_path: Path,
    sqlite_url: str,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    blog: Blog,
    reader_page: Any,
) -> None:
    server = serve(
        tmp_path,
        sqlite_url,
        smtp_server,
        clock,
        PROJECT_ROOT / "tests" / "sequences",
        cors_origins=(blog.origin,),
    )
    try:
        with server.app.app_context():
            tiny = server.services.content.library().get("tiny")
            assert tiny is not None
            form = snippet(tiny, server.url, server.services.settings.secret_key)
        (blog.folder / "post.html").write_text(
            "<!doctype html><html lang=en><meta charset=utf-8><title>A blog post</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<body style='font-family:Georgia,serif;max-width:40em;margin:2em auto;padding:0 1em'>"
            f"<h1>My blog post</h1>{form}</html>",
            encoding="utf-8",
        )
        blog.start()
        page = reader_page

        page.goto(f"{blog.origin}/post.html")
        shots(page, "embedded-form")
        page.get_by_label("Email address").fill("bob@example.org")
        page.get_by_label("Yes, send me this email course.").check()
        page.get_by_role("button", name="Send me the course").click()
        page.wait_for_url(f"{server.url}/subscribe/tiny/thanks")
        # the address shows although the form was posted from another site
        assert page.locator(".sent-to").inner_text() == "bob@example.org"

        server.services.dispatcher().run_pass(clock())
        page.goto(link(smtp_server.to("bob@example.org")[0], "confirm"))
        page.get_by_role("button", name="Confirm: send me the course").click()
        page.wait_for_selector("text=You're in!")
        server.services.dispatcher().run_pass(clock())
        welcome = smtp_server.to("bob@example.org")[-1]
        assert welcome.subject == "Welcome, friend"
        assert download_from_email(page, welcome).startswith(b"%PDF")

        run_until(server, clock, smtp_server, count=3)
        later = smtp_server.to("bob@example.org")[-1]
        assert later.subject == "Lesson two"
        page.goto(link(later, "unsubscribe"))
        page.get_by_role("button", name=re.compile("^Leave everything")).click()
        # the answer is posted to the same address, so wait for its words, not a URL
        page.wait_for_selector("text=You won't get any more emails from us.")
        run_until(server, clock, smtp_server, count=4, days=30)
        assert [m.subject for m in smtp_server.to("bob@example.org")] == [
            "Please confirm: Tiny course",
            "Welcome, friend",
            "Lesson two",
        ]

        page.goto(f"{blog.origin}/post.html")  # the blog's own script, through CORS
        post = """async ([url, email]) => {
            const r = await fetch(url, {method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({email: email, sequence: "tiny",
                                      consent: true, timezone: "Europe/Oslo"})});
            return [r.status, await r.json()];
        }"""
        slip = page.evaluate(post, [f"{server.url}/api/subscriptions", "cy@gmial.com"])
        assert slip == [  # the blog's script reads the one error shape, suggestion and all
            400,
            {
                "error": {
                    "code": "invalid_email",
                    "message": "Did you mean cy@gmail.com?",
                    "field": "email",
                    "suggestion": "cy@gmail.com",
                }
            },
        ]
        answer = page.evaluate(post, [f"{server.url}/api/subscriptions", "cy@example.org"])
        assert answer == [202, {"status": "accepted"}]
        server.services.dispatcher().run_pass(clock())  # the worker's next pass
        assert [m.subject for m in smtp_server.to("cy@example.org")] == [
            "Please confirm: Tiny course"
        ]
        with server.services.sessions() as session:
            cy = session.scalars(select(Subscriber).where(Subscriber.email == "cy@example.org"))
            assert cy.one().timezone == "Europe/Oslo"
            bob = session.scalars(select(Subscriber).where(Subscriber.email == "bob@example.org"))
            assert bob.one().timezone == "Europe/Berlin"
    finally:
        server.stop()
        server.services.engine.dispose()


@pytest.fixture
def signed_courses(tmp_path: Path) -> Path:
    """The real courses, with the author filled in as she will: name, photo, blog, privacy
    policy and where to go after confirming."""
    courses = tmp_path / "signed-sequences"
    shutil.copytree(PROJECT_ROOT / "sequences", courses)
    (courses / "amara.png").write_bytes(png(96, 96))
    site = yaml.safe_load((courses / "site.yaml").read_text())
    site["author"].update(
        name="Dr. Amara Okafor", photo="amara.png", url="https://blog.example.org/"
    )
    site.update(
        privacy_url="https://blog.example.org/privacy",
        after_confirm_url="https://blog.example.org/start-here",
    )
    (courses / "site.yaml").write_text(yaml.safe_dump(site))
    return courses


def test_the_sign_up_page_shows_the_author_and_the_next_pages_the_address_and_the_pdf(
    tmp_path: Path,
    sqlite_url: str,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    signed_courses: Path,
    reader_page: Any,
) -> None:
    server = serve(
        tmp_path,
        sqlite_url,
        smtp_server,
        clock,
        signed_courses,
        sender="Course mail <courses@example.org>",
    )
    page = reader_page
    try:
        page.goto(f"{server.url}/subscribe/interview-questions")
        author = page.locator("figure.author")
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            assert author.is_visible()
            assert author.locator(".author-name").inner_text() == "Dr. Amara Okafor"
            assert author.locator(".author-credential").inner_text() == (
                "Assistant Professor of Medicine practicing in US"
            )
            photo = author.locator("img.author-photo")
            assert photo.is_visible() and photo.evaluate("img => img.naturalWidth") == 96
            privacy = page.get_by_role("link", name="Privacy policy")
            assert privacy.is_visible()
            assert privacy.get_attribute("href") == "https://blog.example.org/privacy"
            screenshot(page, "reader", f"signup-author-{width}")

        page.get_by_label("Email address").fill("ada@exmaple.org")
        page.get_by_label("First name").fill("Ada")
        page.get_by_label("Yes, send me the free PDF").check()
        page.get_by_role("button", name="Send me the course").click()
        page.wait_for_url("**/subscribe/interview-questions/thanks")
        assert page.locator(".sent-to").inner_text() == "ada@exmaple.org"
        shots(page, "check-inbox-address")

        page.get_by_role("link", name="Fix it").click()
        assert page.get_by_label("Email address").input_value() == "ada@exmaple.org"
        assert page.get_by_label("First name").input_value() == "Ada"
        page.get_by_label("Email address").fill("ada@example.org")
        page.get_by_label("Yes, send me the free PDF").check()
        page.get_by_role("button", name="Send me the course").click()
        page.wait_for_url("**/subscribe/interview-questions/thanks")
        assert page.locator(".sent-to").inner_text() == "ada@example.org"

        server.services.dispatcher().run_pass(clock())
        (confirmation,) = smtp_server.to("ada@example.org")
        assert confirmation.message["From"] == '"Dr. Amara Okafor" <courses@example.org>'
        page.goto(link(confirmation, "confirm"))
        with page.expect_navigation():  # .contacts whole, its <strong> and after
            page.get_by_role("button", name="Confirm: send me the course").click()
        assert page.get_by_role("heading", level=1).inner_text() == "You're in!"
        assert "Add courses@example.org to your contacts" in page.locator(".contacts").inner_text()
        onward = page.get_by_role("link", name="Continue to blog.example.org")
        assert onward.get_attribute("href") == "https://blog.example.org/start-here"
        shots(page, "confirmed-pdf")
        with page.expect_download() as info:
            page.get_by_role("link", name="Download the PDF").click()
        assert Path(info.value.path()).read_bytes().startswith(b"%PDF")
    finally:
        server.stop()
        server.services.engine.dispose()
