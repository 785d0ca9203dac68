"""The sign-up's domain check against real DNS servers on loopback: only a definite answer
refuses an address; a look-up that fails (no DNS) accepts it with one warning log line; a
slip on a common provider's domain is answered "did you mean", with a one-click correction."""

from __future__ import annotations

import html
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.resolver
import dns.rrset
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.app import create_app
from drip.audience.mail_domains import Resolver, suggestion
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import SignUpRequest
from tests.conftest import CHEAP_HASHER, LiveServer, count, make_settings, screenshot
from tests.ops.test_monitoring import log_lines  # noqa: F401  (fixture)
from tests.smtp import free_port
from tests.web.test_public_signup import sign_up

NULL_MX = "null MX"  # answer every MX question with RFC 7505's "0 ." (takes no mail)


class DnsServer:
    """A nameserver on a loopback UDP port answering every question with `rcode`, or a null
    MX (`NULL_MX`), or, with `None`, never answering (a network that swallows DNS)."""

    def __init__(self, rcode: dns.rcode.Rcode | str | None) -> None:
        self.rcode = rcode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.questions = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            self.questions += 1
            if self.rcode is None:
                continue
            query = dns.message.from_wire(data)
            answer = dns.message.make_response(query)
            if isinstance(self.rcode, str):  # NULL_MX
                name = query.question[0].name
                answer.answer.append(dns.rrset.from_text(name, 60, "IN", "MX", "0 ."))
            else:
                answer.set_rcode(self.rcode)
            self.sock.sendto(answer.to_wire(), peer)

    def resolver(self) -> Resolver:
        def make() -> dns.resolver.Resolver:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
            resolver.port = self.port
            resolver.lifetime = 0.5
            return resolver

        return make


@pytest.fixture
def dns_server(request: pytest.FixtureRequest) -> Iterator[DnsServer]:
    server = DnsServer(request.param)
    yield server
    server.sock.close()


def app_with(tmp_path: Path, sqlite_url: str, clock: FrozenClock, resolver: Resolver) -> Flask:
    settings = make_settings(tmp_path, sqlite_url, check_email_domain=True)
    app = create_app(settings, clock=clock, password_hasher=CHEAP_HASHER, resolver=resolver)
    app.config["TESTING"] = True
    return app


def queued(svc: Services) -> list[str]:
    with svc.sessions() as session:
        return list(session.scalars(select(SignUpRequest.email)))


def post_json(web: FlaskClient, email: str, **more: object) -> tuple[int, dict[str, Any]]:
    body = {"email": email, "sequence": "tiny", "consent": True, **more}
    answer = web.post("/api/subscriptions", json=body)
    return answer.status_code, answer.get_json()


@pytest.mark.parametrize(
    "dns_server", [None, dns.rcode.SERVFAIL], indirect=True, ids=["timeout", "no-nameservers"]
)
def test_a_look_up_that_fails_accepts_the_address_and_logs_one_warning_line(
    tmp_path: Path,
    sqlite_url: str,
    clock: FrozenClock,
    dns_server: DnsServer,
    log_lines: list[str],  # noqa: F811
) -> None:
    app = app_with(tmp_path, sqlite_url, clock, dns_server.resolver())

    status, _ = post_json(app.test_client(), "ada@gmail.com")

    assert status == 202
    assert dns_server.questions >= 1
    assert queued(app.extensions["drip"]) == ["ada@gmail.com"]
    warnings = [line for line in log_lines if "level=warning" in line]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert 'msg="could not look up an address' in warnings[0]
    assert " domain=gmail.com " in warnings[0] and " reason=" in warnings[0]


def test_a_machine_without_any_dns_configuration_accepts_the_address(
    tmp_path: Path,
    sqlite_url: str,
    clock: FrozenClock,
    log_lines: list[str],  # noqa: F811
) -> None:
    missing = tmp_path / "resolv.conf"  # a container without /etc/resolv.conf
    app = app_with(
        tmp_path, sqlite_url, clock, lambda: dns.resolver.Resolver(filename=str(missing))
    )

    answer = sign_up(app.test_client(), email="grace@example.net")

    assert answer.status_code == 303
    assert queued(app.extensions["drip"]) == ["grace@example.net"]
    assert len([line for line in log_lines if "level=warning" in line]) == 1


@pytest.mark.parametrize("dns_server", [dns.rcode.NXDOMAIN], indirect=True)
def test_a_domain_dns_says_does_not_exist_is_refused_and_nothing_is_queued(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock, dns_server: DnsServer
) -> None:
    app = app_with(tmp_path, sqlite_url, clock, dns_server.resolver())
    web = app.test_client()

    status, body = post_json(web, "ada@no-such-domain.example")
    page = sign_up(web, email="ada@no-such-domain.example")

    assert status == 400
    assert body["error"]["code"] == "invalid_email"
    assert body["error"]["message"] == (
        "The domain name no-such-domain.example does not exist. Please check the address."
    )
    assert page.status_code == 400 and "no-such-domain.example does not exist" in page.text
    assert count(app.extensions["drip"], SignUpRequest) == 0


@pytest.mark.parametrize("dns_server", [NULL_MX], indirect=True)
def test_a_domain_publishing_a_null_mx_is_refused(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock, dns_server: DnsServer
) -> None:
    app = app_with(tmp_path, sqlite_url, clock, dns_server.resolver())

    status, body = post_json(app.test_client(), "ada@example.org")

    assert status == 400
    assert (
        body["error"]["message"]
        == "The domain name example.org does not accept email. Please check the address."
    )
    assert count(app.extensions["drip"], SignUpRequest) == 0


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("ada@gmial.com", "ada@gmail.com"),
        ("ada@gmail.co", "ada@gmail.com"),
        ("Ada.L@hotmial.com", "Ada.L@hotmail.com"),
        ("ada@yaho.com", "ada@yahoo.com"),
        ("ada@outlok.com", "ada@outlook.com"),
        ("ada@icloud.cm", "ada@icloud.com"),
        ("ada@proton.m", "ada@proton.me"),
        ("ada@aol.cm", "ada@aol.com"),
        ("ada@gmail.com", None),
        ("ada@ymail.com", None),
        ("ada@mail.com", None),
        ("ada@example.org", None),
        ("ada@aol.de", None),
    ],
)
def test_a_slip_on_a_common_providers_domain_gets_a_suggestion(
    typed: str, meant: str | None
) -> None:
    assert suggestion(typed) == meant


@pytest.mark.parametrize("dns_server", [None], indirect=True)
def test_the_page_asks_did_you_mean_keeps_what_was_typed_and_corrects_in_one_click(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock, dns_server: DnsServer
) -> None:
    app = app_with(tmp_path, sqlite_url, clock, dns_server.resolver())
    web = app.test_client()

    page = sign_up(web, email="ada@gmial.com", first_name="Ada")

    assert page.status_code == 400
    text = html.unescape(page.text)
    assert "Did you mean ada@gmail.com?" in text
    assert 'value="ada@gmial.com"' in text and 'value="Ada"' in text  # what was typed stays
    assert '<button type="submit" name="use_email" value="ada@gmail.com">' in text
    assert count(app.extensions["drip"], SignUpRequest) == 0

    fixed = sign_up(
        web, email="ada@gmial.com", suggested_for="ada@gmial.com", use_email="ada@gmail.com"
    )

    assert fixed.status_code == 303
    assert queued(app.extensions["drip"]) == ["ada@gmail.com"]


@pytest.mark.parametrize("dns_server", [None], indirect=True)
def test_the_reader_can_keep_the_address_they_typed_after_did_you_mean(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock, dns_server: DnsServer
) -> None:
    app = app_with(tmp_path, sqlite_url, clock, dns_server.resolver())
    web = app.test_client()

    retyped = sign_up(
        web, email="ada@gmx.com", suggested_for="ada@gmial.com", use_email="ada@gmail.com"
    )
    kept = sign_up(web, email="grace@gmial.com", email_checked="yes")

    assert retyped.status_code == 303 and kept.status_code == 303
    assert sorted(queued(app.extensions["drip"])) == ["ada@gmx.com", "grace@gmial.com"]


@pytest.mark.parametrize("dns_server", [None], indirect=True)
def test_the_json_api_error_carries_the_suggestion(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock, dns_server: DnsServer
) -> None:
    app = app_with(tmp_path, sqlite_url, clock, dns_server.resolver())
    web = app.test_client()

    status, body = post_json(web, "ada@hotmial.com")
    kept_status, _ = post_json(web, "ada@hotmial.com", email_checked=True)

    assert (status, body) == (
        400,
        {
            "error": {
                "code": "invalid_email",
                "message": "Did you mean ada@hotmail.com?",
                "field": "email",
                "suggestion": "ada@hotmail.com",
            }
        },
    )
    assert kept_status == 202
    assert queued(app.extensions["drip"]) == ["ada@hotmial.com"]


def test_a_closed_nameserver_port_is_could_not_look_up_too(
    tmp_path: Path,
    sqlite_url: str,
    clock: FrozenClock,
    log_lines: list[str],  # noqa: F811
) -> None:
    port = free_port()

    def closed() -> dns.resolver.Resolver:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = ["127.0.0.1"], port, 0.5
        return resolver

    app = app_with(tmp_path, sqlite_url, clock, closed)

    status, _ = post_json(app.test_client(), "ada@gmail.com")

    assert status == 202
    assert len([line for line in log_lines if "level=warning" in line]) == 1


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_in_chromium_did_you_mean_sits_under_the_field_and_one_click_signs_up(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock, page: Any, width: int
) -> None:
    server = LiveServer(
        create_app(
            make_settings(tmp_path, sqlite_url, check_email_domain=False),
            clock=clock,
            password_hasher=CHEAP_HASHER,
        ),
        free_port(),
    )
    try:
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(f"{server.url}/subscribe/tiny")
        page.get_by_label("Email address").fill("ada@gmial.com")
        page.get_by_label("First name").fill("Ada")
        page.get_by_role("checkbox").check()
        with page.expect_navigation():  # to the load: boxes measured with the stylesheet on
            page.get_by_role("button", name="Send me the course").click()

        use = page.get_by_role("button", name="Use ada@gmail.com")
        assert page.get_by_role("alert").inner_text() == "Did you mean ada@gmail.com?"
        assert page.get_by_label("Email address").input_value() == "ada@gmial.com"
        assert page.get_by_label("First name").input_value() == "Ada"
        email_box = page.get_by_label("Email address").bounding_box()
        use_box = use.bounding_box()
        assert use_box["y"] > email_box["y"] and use_box["x"] + use_box["width"] <= width
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        screenshot(page, "reader", f"did-you-mean-{width}")
        use.click()

        page.wait_for_url(re.compile(r"/subscribe/tiny/thanks$"))
        assert "ada@gmail.com" in page.inner_text("main")
        assert queued(server.services) == ["ada@gmail.com"]
    finally:
        server.stop()
        server.services.engine.dispose()
