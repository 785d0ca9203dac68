"""Who gets into /admin: login, logout, throttled guessing, and nothing shown logged out."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from drip.app import create_app
from drip.core.clock import FrozenClock
from drip.ops.operators import FAILED_PER_ACCOUNT, create_operator, set_password
from drip.services import Services
from tests.conftest import make_settings

OPERATOR = "ops@example.org"
PASSWORD = "correct horse battery"


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match[1]


def add_operator(svc: Services, email: str = OPERATOR, password: str = PASSWORD) -> int:
    with svc.sessions() as session:
        operator = create_operator(session, email, password, svc.clock())
        session.commit()
        return operator.id


def logged_in_client(app: Flask) -> FlaskClient:
    """A client of `app` logged in as a new operator (an owner)."""
    add_operator(app.extensions["drip"])
    client = app.test_client()
    assert log_in(client).status_code == 302
    return client


@pytest.fixture
def admin(app: Flask) -> Iterator[FlaskClient]:
    """A client with an operator account that has not logged in yet."""
    add_operator(app.extensions["drip"])
    yield app.test_client()


def log_in(
    web: FlaskClient,
    email: str = OPERATOR,
    password: str = PASSWORD,
    next_url: str | None = None,
    ip: str = "198.51.100.7",
) -> TestResponse:
    page = web.get("/admin/login")
    data = {"csrf_token": csrf_token(page.text), "email": email, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return web.post("/admin/login", data=data, environ_base={"REMOTE_ADDR": ip})


@pytest.fixture
def logged_in(admin: FlaskClient) -> FlaskClient:
    assert log_in(admin).status_code == 302
    return admin


def fill(rule: str) -> str:
    """A concrete URL for a rule: ids 1, slugs of the tiny course."""
    values = {
        "int": "1",
        "action": "pause",
        "slug": "tiny",
        "lesson": "welcome",
        "name": "x.eml",
        "part": "settings",
    }

    def swap(match: re.Match[str]) -> str:
        converter, _, name = match[1].rpartition(":")
        return values.get(name) or values.get(converter.split("(")[0]) or "1"

    return re.sub(r"<([^>]+)>", swap, rule)


def test_every_admin_url_leads_to_the_login_page_when_logged_out(
    admin: FlaskClient, app: Flask
) -> None:
    token = csrf_token(admin.get("/admin/login").text)
    rules = [
        r
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/admin") and r.endpoint != "admin.auth.login"
    ]
    assert len(rules) >= 15
    for rule in rules:
        url = fill(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            answer = admin.open(url, method=method, data={"csrf_token": token})
            assert answer.status_code == 302, (method, url, answer.status_code)
            assert answer.location.startswith("/admin/login"), (method, url, answer.location)


def test_login_with_the_right_password_opens_the_dashboard(admin: FlaskClient) -> None:
    answer = log_in(admin, next_url="/admin/deliveries?status=failed")
    assert answer.status_code == 302
    assert answer.location == "/admin/deliveries?status=failed"
    page = admin.get("/admin/")
    assert page.status_code == 200
    assert "Sent, last hour" in page.text and OPERATOR in page.text
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie


def test_a_redirect_after_login_never_leaves_the_admin(admin: FlaskClient) -> None:
    for target in (
        "https://evil.example/admin",
        "//evil.example/admin",
        "/\\evil.example",
        "/unsubscribe/x",
        "javascript:alert(1)",
    ):
        web = admin.application.test_client()
        assert log_in(web, next_url=target).location == "/admin/", target


def test_a_wrong_password_is_refused(admin: FlaskClient) -> None:
    answer = log_in(admin, password="wrong password!")
    assert answer.status_code == 401
    assert "Wrong email or password" in answer.text
    assert admin.get("/admin/").status_code == 302


def test_repeated_wrong_passwords_from_one_ip_refuse_even_the_right_one_from_there(
    admin: FlaskClient, app: Flask, clock: FrozenClock
) -> None:
    for _ in range(FAILED_PER_ACCOUNT + 1):  # a right password is not a failure
        assert log_in(app.test_client(), ip="203.0.113.5").status_code == 302
    for attempt in range(FAILED_PER_ACCOUNT):
        assert log_in(admin, password=f"guess {attempt}", ip="203.0.113.5").status_code == 401
    refused = log_in(admin, ip="203.0.113.5")
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.text
    assert admin.get("/admin/").status_code == 302
    clock.advance(minutes=16)
    assert log_in(admin, ip="203.0.113.5").status_code == 302


def test_a_strangers_wrong_passwords_do_not_lock_the_operator_out_from_their_own_address(
    admin: FlaskClient,
) -> None:
    for attempt in range(FAILED_PER_ACCOUNT * 2):
        assert log_in(admin, password=f"guess {attempt}", ip="203.0.113.5").status_code in (
            401,
            429,
        )
    assert log_in(admin, ip="203.0.113.5").status_code == 429
    assert log_in(admin, ip="198.51.100.20").status_code == 302


def test_many_wrong_guesses_from_one_ip_throttle_every_account_from_it(admin: FlaskClient) -> None:
    from drip.ops.operators import FAILED_PER_IP

    for attempt in range(FAILED_PER_IP):
        log_in(admin, email=f"nobody{attempt}@example.org", password="x" * 12)
    assert log_in(admin).status_code == 429
    assert log_in(admin, ip="192.0.2.1").status_code == 302


def test_logging_out_ends_the_session(logged_in: FlaskClient) -> None:
    page = logged_in.get("/admin/")
    answer = logged_in.post("/admin/logout", data={"csrf_token": csrf_token(page.text)})
    assert answer.status_code == 302
    assert logged_in.get("/admin/").location.startswith("/admin/login")


def test_logging_out_ends_the_session_on_the_server_not_only_in_the_browser(
    app: Flask, logged_in: FlaskClient
) -> None:
    page = logged_in.get("/admin/")
    cookie = logged_in.get_cookie("session")
    assert cookie is not None
    logged_in.post("/admin/logout", data={"csrf_token": csrf_token(page.text)})
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)  # a copy of the cookie taken before logging out
    assert thief.get("/admin/").status_code == 302


def test_a_new_password_ends_older_sessions(logged_in: FlaskClient, app: Flask) -> None:
    assert logged_in.get("/admin/").status_code == 200
    svc: Services = app.extensions["drip"]
    with svc.sessions() as session:
        set_password(session, OPERATOR, "a different password")
        session.commit()
    assert logged_in.get("/admin/").status_code == 302


def test_admin_forms_without_a_csrf_token_are_refused(logged_in: FlaskClient) -> None:
    answer = logged_in.post("/admin/sequences/tiny/pause")
    assert answer.status_code == 400
    assert "paused" not in logged_in.get("/admin/sequences").text


def test_an_id_past_any_integer_is_a_404_not_an_error(logged_in: FlaskClient) -> None:
    assert logged_in.get("/admin/readers/2147483648").status_code == 404
    assert logged_in.get("/admin/readers/99999999999999999999").status_code == 404


@pytest.mark.parametrize("target", ["/admin/\r\nSet-Cookie: x=1", "/admin/%0d%0a", "/admin/ x"])
def test_a_login_next_with_line_breaks_falls_back_to_the_dashboard(
    admin: FlaskClient, target: str
) -> None:
    answer = log_in(admin, next_url=target)
    assert answer.status_code == 302
    assert answer.headers["Location"] in ("/admin/", "/admin/%0d%0a")
    assert "Set-Cookie: x" not in str(answer.headers)


class CountingHasher(PasswordHasher):
    """The tests' cheap argon2, counting the passwords it checks (from any thread)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.checked = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self._lock:
            self.checked += 1
        return super().verify(hash, password)


def test_thirty_wrong_logins_at_once_check_at_most_the_limits_worth_of_passwords(
    backend_url: str, tmp_path: Path, clock: FrozenClock
) -> None:
    hasher = CountingHasher()
    app = create_app(make_settings(tmp_path, backend_url), clock=clock, password_hasher=hasher)
    app.config["TESTING"] = True
    add_operator(app.extensions["drip"])
    clients = [app.test_client() for _ in range(30)]
    tokens = [csrf_token(web.get("/admin/login").text) for web in clients]
    start = threading.Barrier(len(clients))
    answers: list[int] = []

    def guess(web: FlaskClient, token: str, n: int) -> None:
        data = {"csrf_token": token, "email": OPERATOR, "password": f"guess number {n}"}
        start.wait()
        answer = web.post("/admin/login", data=data, environ_base={"REMOTE_ADDR": "203.0.113.5"})
        answers.append(answer.status_code)

    threads = [
        threading.Thread(target=guess, args=(web, token, n))
        for n, (web, token) in enumerate(zip(clients, tokens, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert hasher.checked == FAILED_PER_ACCOUNT  # the first five counted, and no more
    assert sorted(answers) == [401] * FAILED_PER_ACCOUNT + [429] * (30 - FAILED_PER_ACCOUNT)
    assert log_in(app.test_client(), ip="203.0.113.5").status_code == 429
    assert hasher.checked == FAILED_PER_ACCOUNT  # the right password, refused unchecked
    app.extensions["drip"].engine.dispose()
