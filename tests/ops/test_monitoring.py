"""Monitoring that tells the truth and nothing more: /healthz without the database's error
text, /metrics behind a token or showing nothing a sign-up moves, a front page, styled
error pages, and one logfmt line per pass that did something."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from drip.app import create_app
from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.core.logs import LogfmtFormatter
from drip.jobs.worker import dispatch_job
from drip.services import build_services
from tests.conftest import make_settings
from tests.smtp import SmtpServer, free_port
from tests.web.test_admin_access import add_operator, log_in

LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"]+)')


def logfmt(line: str) -> dict[str, str]:
    """One logfmt line as a dict, the way a collector would read it; it must parse whole."""
    pairs = LOGFMT.findall(line)
    assert " ".join(f"{k}={v}" for k, v in pairs) == line, line
    return {key: value[1:-1] if value.startswith('"') else value for key, value in pairs}


def test_healthz_never_shows_the_database_error_text(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    settings = make_settings(tmp_path, f"postgresql+psycopg://secretuser@127.0.0.1:{port}/db")
    app = create_app(settings)
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["database"] == "unreachable"
    assert "error" not in body
    for secret in ("secretuser", str(port), "refused", "psycopg", "connection"):
        assert secret not in answer.text.lower()


def sign_up_and_pass(app: Flask, clock: FrozenClock, email: str) -> None:
    svc = app.extensions["drip"]
    with svc.sessions() as session:
        subscribe(
            session,
            svc.content.library(),
            "tiny",
            email,
            clock(),
            consent=Consent(source="test", text="Yes"),
        )
        session.commit()
    svc.dispatcher().run_pass(clock())


@pytest.fixture
def token_app(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Flask]:
    app = create_app(
        make_settings(
            tmp_path, sqlite_url, smtp_url=smtp_server.url, metrics_token="s3cret-scrape"
        ),
        clock=clock,
    )
    yield app
    app.extensions["drip"].engine.dispose()


def test_metrics_need_the_bearer_token_when_one_is_set(
    token_app: Flask, clock: FrozenClock
) -> None:
    sign_up_and_pass(token_app, clock, "ada@example.org")
    web = token_app.test_client()
    assert web.get("/metrics").status_code == 401
    wrong = web.get("/metrics", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    right = web.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
    assert right.status_code == 200
    assert 'drip_enrollments{sequence="tiny",status="pending"} 1.0' in right.text


def test_open_metrics_show_nothing_a_sign_up_moves(
    app: Flask, token_app: Flask, clock: FrozenClock
) -> None:
    for application in (app, token_app):
        sign_up_and_pass(application, clock, "known@example.org")
    headers = {"Authorization": "Bearer s3cret-scrape"}
    before = (
        app.test_client().get("/metrics").text,
        token_app.test_client().get("/metrics", headers=headers).text,
    )
    for application in (app, token_app):
        sign_up_and_pass(application, clock, "new@example.org")  # a stranger probes an address
    after = (
        app.test_client().get("/metrics").text,
        token_app.test_client().get("/metrics", headers=headers).text,
    )
    assert after[0] == before[0]
    assert "drip_last_pass_age_seconds 0.0" in after[0] and "drip_enrollments" not in after[0]
    assert after[1] != before[1]  # the counts behind the token do move


def test_root_links_to_every_course(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'href="/subscribe/tiny"' in page.text and "Tiny course" in page.text


def test_root_redirects_to_the_home_url_when_one_is_set(tmp_path: Path, sqlite_url: str) -> None:
    app = create_app(make_settings(tmp_path, sqlite_url, home_url="https://blog.example.org"))
    answer = app.test_client().get("/")
    assert answer.status_code == 302 and answer.location == "https://blog.example.org"


@pytest.fixture
def failing_app(tmp_path: Path, sqlite_url: str, clock: FrozenClock) -> Iterator[Flask]:
    """The app with one public and one admin URL whose handler fails, as a bug would."""
    app = create_app(make_settings(tmp_path, sqlite_url), clock=clock)

    def broken() -> str:
        raise RuntimeError("secret detail of the failure")

    app.add_url_rule("/broken", "broken", broken)
    app.add_url_rule("/admin/broken", "admin_broken", broken)
    yield app
    app.extensions["drip"].engine.dispose()


def test_unknown_pages_get_the_styled_404_of_their_side(failing_app: Flask) -> None:
    web = failing_app.test_client()
    public = web.get("/no-such-page")
    assert public.status_code == 404
    assert "Page not found" in public.text and "/static/style.css" in public.text
    admin = web.get("/admin/no-such-page")
    assert admin.status_code == 404
    assert "Page not found" in admin.text and "/static/admin.css" in admin.text
    add_operator(failing_app.extensions["drip"])
    log_in(web)
    missing_reader = web.get("/admin/readers/999")
    assert missing_reader.status_code == 404 and "/static/admin.css" in missing_reader.text


def test_a_failure_gets_the_styled_500_page_without_its_details(
    failing_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    web = failing_app.test_client()
    for path, stylesheet in (("/broken", "style.css"), ("/admin/broken", "admin.css")):
        answer = web.get(path)
        assert answer.status_code == 500
        assert "Something went wrong" in answer.text and f"/static/{stylesheet}" in answer.text
        assert "secret detail" not in answer.text
    assert "secret detail of the failure" in caplog.text  # the log keeps what happened


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """drip's log records as the logfmt formatter writes them to stderr."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(LogfmtFormatter())
    logger = logging.getLogger("drip")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_a_pass_that_did_something_logs_one_logfmt_line_of_counts(
    tmp_path: Path,
    sqlite_url: str,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    log_lines: list[str],
) -> None:
    svc = build_services(make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url), clock)
    try:
        with svc.sessions() as session:
            for email in ("ada@example.org", "bob@example.org"):
                subscribe(
                    session,
                    svc.content.library(),
                    "tiny",
                    email,
                    clock(),
                    consent=Consent(source="test", text="Yes"),
                    confirmed=True,
                )
            session.commit()
        dispatcher = svc.dispatcher()
        dispatch_job(svc, dispatcher)
        dispatch_job(svc, dispatcher)  # nothing is due now: no line
    finally:
        svc.engine.dispose()
    assert len(log_lines) == 1
    fields = logfmt(log_lines[0])
    assert fields["level"] == "info" and fields["logger"] == "drip.jobs.worker"
    assert fields["msg"] == "dispatch pass" and fields["sent"] == "2"


def test_a_failed_pass_logs_one_parseable_line_with_the_traceback(
    tmp_path: Path, clock: FrozenClock, log_lines: list[str]
) -> None:
    # A database nobody migrated: the pass fails on its first query.
    (tmp_path / "empty.sqlite3").touch()
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    svc = build_services(settings, clock)
    try:
        dispatch_job(svc, svc.dispatcher())
    finally:
        svc.engine.dispose()
    assert len(log_lines) == 1 and "\n" not in log_lines[0]
    fields = logfmt(log_lines[0])
    assert fields["level"] == "error"
    assert "Traceback" in fields["error"] and "no such table" in fields["error"]


def test_unknown_api_urls_answer_json_in_each_apis_shape(failing_app: Flask) -> None:
    web = failing_app.test_client()
    rest = web.get("/api/v1/no-such-thing")
    assert rest.status_code == 404 and rest.get_json()["error"]["code"] == "not_found"
    old = web.get("/api/no-such-thing")
    assert old.status_code == 404 and old.get_json()["error"]["code"] == "not_found"
