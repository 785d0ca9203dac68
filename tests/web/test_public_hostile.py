"""Hostile and broken input: each answer is checked, and so is what did (not) change."""
# ruff: noqa: F811  (the fixtures imported from test_public_signup are parameters here)

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.app import create_app
from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import ConsentRecord, Enrollment, RateLimit, Subscriber
from tests.browser.test_signup_domains import NULL_MX, DnsServer
from tests.conftest import count, make_settings, take_in
from tests.smtp import SmtpServer
from tests.web.test_public_signup import (  # noqa: F401  (fixtures)
    csrf_token,
    public_app,
    public_settings,
    sign_up,
    snapshot,
    svc,
    web,
)


@pytest.fixture
def strict_app(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Flask:
    """Low limits: three sign-ups per IP and two per address each hour."""
    app = create_app(
        make_settings(
            tmp_path,
            sqlite_url,
            smtp_url=smtp_server.url,
            check_email_domain=False,
            signup_limit_ip=3,
            signup_limit_address=2,
        ),
        clock=clock,
    )
    app.config["TESTING"] = True
    return app


def reader(svc: Services, email: str = "ada@example.org", confirmed: bool = True) -> int:
    with svc.sessions() as session:
        enrollment = subscribe(
            session,
            svc.content.library(),
            "tiny",
            email,
            svc.clock(),
            consent=Consent(source="test", text="yes"),
            first_name="Ada",
            confirmed=confirmed,
        )
        session.commit()
        return enrollment.id


def path(url: str) -> str:
    return url.removeprefix("http://drip.test")


# -- rate limits -------------------------------------------------------------------------------


def test_sign_ups_are_limited_per_ip_and_the_window_reopens(
    strict_app: Flask, clock: FrozenClock
) -> None:
    svc: Services = strict_app.extensions["drip"]
    web = strict_app.test_client()
    answers = [
        sign_up(web, email=f"r{i}@example.org", ip="198.51.100.1").status_code for i in range(4)
    ]
    other_ip = sign_up(web, email="other@example.org", ip="198.51.100.2")

    assert answers == [303, 303, 303, 429]
    assert other_ip.status_code == 303
    take_in(svc)
    assert count(svc, Subscriber) == 4  # r3 was never stored
    with svc.sessions() as session:
        assert (
            session.scalar(select(Subscriber).where(Subscriber.email == "r3@example.org")) is None
        )
    clock.advance(hours=1)
    assert sign_up(web, email="r3@example.org", ip="198.51.100.1").status_code == 303


def test_sign_ups_are_limited_per_address_whatever_the_ip(strict_app: Flask) -> None:
    svc: Services = strict_app.extensions["drip"]
    web = strict_app.test_client()
    answers = [sign_up(web, ip=f"198.51.100.{i}").status_code for i in range(3)]

    assert answers == [303, 303, 429]
    take_in(svc)
    assert count(svc, ConsentRecord) == 2
    three = sign_up(web, email="ADA@Example.org", ip="198.51.100.9")  # same address, other case
    assert three.status_code == 429
    assert "Too many sign-ups for this address" in three.text


def test_the_limit_is_shared_through_the_database(strict_app: Flask) -> None:
    """Two app instances (as two gunicorn workers) on one database share the counts."""
    svc: Services = strict_app.extensions["drip"]
    twin = create_app(svc.settings, clock=svc.clock)
    first, second = strict_app.test_client(), twin.test_client()

    answers = [
        sign_up(client, email=f"r{i}@example.org", ip="198.51.100.1").status_code
        for i, client in enumerate([first, second, first, second])
    ]

    assert answers == [303, 303, 303, 429]
    with svc.sessions() as session:
        assert session.get(RateLimit, "signup:ip:198.51.100.1").count == 4  # type: ignore[union-attr]
    twin.extensions["drip"].engine.dispose()


def test_fresh_link_requests_are_limited_per_ip_and_per_address(
    strict_app: Flask, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    svc: Services = strict_app.extensions["drip"]
    web = strict_app.test_client()
    reader(svc, confirmed=False)
    token = csrf_token(web.get("/confirm/forged").text)

    def resend(email: str, ip: str) -> int:
        return web.post(
            "/resend",
            data={"csrf_token": token, "purpose": "confirm", "email": email},
            environ_overrides={"REMOTE_ADDR": ip},
        ).status_code

    per_address = [resend("ada@example.org", f"198.51.100.{i}") for i in range(3)]
    per_ip = [resend(f"x{i}@example.org", "198.51.100.50") for i in range(4)]

    assert per_address == [200, 200, 429]
    assert per_ip == [200, 200, 200, 429]


# -- what the form accepts ---------------------------------------------------------------------


def test_a_filled_honeypot_is_answered_like_a_sign_up_and_stores_nothing(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    human = sign_up(web, email="human@example.org")
    before = snapshot(svc.engine)

    bot = sign_up(web, email="bot@example.org", website="http://spam.example")

    assert (bot.status_code, bot.headers["Location"]) == (
        human.status_code,
        human.headers["Location"],
    )
    assert snapshot(svc.engine) == before
    svc.dispatcher().run_pass(clock())
    assert smtp_server.to("bot@example.org") == []
    with svc.sessions() as session:
        assert (
            session.scalar(select(Subscriber).where(Subscriber.email == "bot@example.org")) is None
        )


@pytest.mark.parametrize(
    "address",
    [
        "not-an-address",
        "ada@",
        "ada@@example.org",
        "ada@example..org",
        "a\r\nBcc: x@example.org@example.org",
        "",
    ],
)
def test_a_malformed_address_is_refused_and_nothing_stored(
    web: FlaskClient, svc: Services, address: str
) -> None:
    before = snapshot(svc.engine)

    answer = sign_up(web, email=address)

    assert answer.status_code == 400
    assert 'role="alert"' in answer.text and 'aria-invalid="true"' in answer.text
    assert snapshot(svc.engine) == before


def test_the_domain_check_refuses_a_domain_that_takes_no_mail(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    """example.org publishes a null MX (RFC 7505), here from a nameserver on loopback (a
    look-up that fails accepts the address instead: tests/browser/test_signup_domains.py)."""
    nameserver = DnsServer(NULL_MX)
    settings = make_settings(tmp_path, sqlite_url, check_email_domain=True)
    app = create_app(settings, clock=clock, resolver=nameserver.resolver())
    svc: Services = app.extensions["drip"]

    answer = sign_up(app.test_client())
    nameserver.sock.close()

    assert answer.status_code == 400
    assert "example.org does not accept email" in answer.text
    assert count(svc, Subscriber) == 0
    svc.engine.dispose()


# -- CSRF --------------------------------------------------------------------------------------


def test_forms_without_a_csrf_token_are_refused_and_change_nothing(
    web: FlaskClient, svc: Services
) -> None:
    enrollment_id = reader(svc)
    with svc.sessions() as session:
        subscriber_id = session.get(Enrollment, enrollment_id).subscriber_id  # type: ignore[union-attr]
    before = snapshot(svc.engine)
    posts = [
        ("/subscribe/tiny", {"email": "eve@example.org", "consent": "yes"}),
        (path(svc.links.unsubscribe_url(enrollment_id)), {"scope": "everything"}),
        (
            path(svc.links.preferences_url(subscriber_id)),
            {"action": "leave", "enrollment": str(enrollment_id)},
        ),
        ("/resend", {"purpose": "confirm", "email": "ada@example.org"}),
    ]

    answers = [web.post(url, data=data) for url, data in posts]
    wrong = web.post(
        "/subscribe/tiny",
        data={"email": "eve@example.org", "consent": "yes", "csrf_token": "forged"},
    )

    assert [a.status_code for a in [*answers, wrong]] == [400] * 5
    assert all("go through" in a.text and "reload the page" in a.text for a in [*answers, wrong])
    assert snapshot(svc.engine) == before


# -- header injection, redirects ---------------------------------------------------------------


def test_a_name_with_line_breaks_cannot_add_a_header(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    sign_up(web, first_name="Ada\r\nBcc: eve@example.org\r\nSubject: pwned")
    svc.dispatcher().run_pass(clock())

    (message,) = smtp_server.messages
    assert message.recipients == ["ada@example.org"]
    assert message.message["Bcc"] is None
    assert message.message.get_all("Subject") == ["Please confirm: Tiny course"]
    to_header = next(line for line in message.raw.split(b"\r\n") if line.startswith(b"To:"))
    assert b"ada@example.org" in to_header
    with svc.sessions() as session:
        name = session.scalars(select(Subscriber.first_name)).one()
        assert "\r" not in name and "\n" not in name


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
def test_no_next_parameter_sends_a_reader_to_another_host(
    web: FlaskClient, svc: Services, target: str
) -> None:
    enrollment_id = reader(svc, confirmed=False)
    page = web.get("/subscribe/tiny")

    posted = web.post(
        f"/subscribe/tiny?next={target}",
        data={
            "csrf_token": csrf_token(page.text),
            "email": "bob@example.org",
            "consent": "yes",
            "next": target,
        },
    )
    confirm_path = f"{path(svc.links.confirm_url(enrollment_id))}?next={target}"
    confirmed = web.post(
        confirm_path, data={"csrf_token": csrf_token(web.get(confirm_path).text), "next": target}
    )
    one_click = web.post(
        f"{path(svc.links.unsubscribe_url(enrollment_id))}?next={target}",
        data={"List-Unsubscribe": "One-Click", "next": target},
    )

    assert posted.status_code == 303 and posted.headers["Location"] == "/subscribe/tiny/thanks"
    assert confirmed.status_code == 200 and "Location" not in confirmed.headers
    assert one_click.status_code == 200 and "Location" not in one_click.headers
    assert "evil.example" not in confirmed.text


# -- tampered and expired tokens ---------------------------------------------------------------


def tamper(token: str) -> str:
    """Change one character of the signature."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def test_tampered_tokens_get_a_kind_4xx_and_change_nothing(web: FlaskClient, svc: Services) -> None:
    enrollment_id = reader(svc, confirmed=False)
    other = reader(svc, email="bob@example.org")
    links = svc.links
    before = snapshot(svc.engine)
    page = web.get("/subscribe/tiny")
    token = csrf_token(page.text)

    gets = [
        f"/confirm/{tamper(links.token('confirm', enrollment_id))}",
        f"/unsubscribe/{tamper(links.token('unsubscribe', other))}",
        f"/preferences/{tamper(links.token('preferences', 1))}",
        f"/magnet/{tamper(links.token('magnet', other))}",
        f"/unsubscribe/{links.token('confirm', other)}",  # a token made for another purpose
        f"/confirm/{links.token('unsubscribe', enrollment_id)}",
        "/confirm/not-a-token-at-all",
    ]
    answers = [web.get(url) for url in gets]
    one_click = web.post(
        f"/unsubscribe/{tamper(links.token('unsubscribe', other))}",
        data={"List-Unsubscribe": "One-Click"},
    )
    form = web.post(
        f"/unsubscribe/{tamper(links.token('unsubscribe', other))}",
        data={"csrf_token": token, "scope": "everything"},
    )

    assert [a.status_code for a in answers] == [400] * len(gets)
    assert all(
        "This link doesn't work" in a.text and "Nothing has changed" in a.text for a in answers
    )
    assert (one_click.status_code, form.status_code) == (400, 400)
    assert snapshot(svc.engine) == before


def test_an_expired_download_link_changes_nothing_and_offers_a_fresh_one(
    web: FlaskClient, svc: Services, clock: FrozenClock
) -> None:
    enrollment_id = reader(svc)
    url = path(svc.links.magnet_url(enrollment_id))
    clock.advance(days=svc.settings.link_days + 1)
    before = snapshot(svc.engine)

    answer = web.get(url)

    assert answer.status_code == 410
    assert "This link has expired" in answer.text
    assert re.search(r'name="purpose" value="magnet"', answer.text)
    assert snapshot(svc.engine) == before


def test_preferences_cannot_reach_another_readers_course(web: FlaskClient, svc: Services) -> None:
    mine = reader(svc)
    theirs = reader(svc, email="bob@example.org")
    with svc.sessions() as session:
        subscriber_id = session.get(Enrollment, mine).subscriber_id  # type: ignore[union-attr]
    url = path(svc.links.preferences_url(subscriber_id))
    page = web.get(url)
    before = snapshot(svc.engine)

    answer = web.post(
        url,
        data={"csrf_token": csrf_token(page.text), "action": "leave", "enrollment": str(theirs)},
    )

    assert answer.status_code == 400
    assert snapshot(svc.engine) == before


def test_simultaneous_sign_ups_of_one_address_make_one_reader(
    public_app: Flask, svc: Services
) -> None:
    """Eight at once (as from eight gunicorn workers): all answered alike, one subscriber."""
    import threading

    clients = [public_app.test_client() for _ in range(8)]
    tokens = [csrf_token(client.get("/subscribe/tiny").text) for client in clients]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def post(n: int) -> None:
        barrier.wait()
        answer = clients[n].post(
            "/subscribe/tiny",
            data={"csrf_token": tokens[n], "email": "race@example.org", "consent": "yes"},
            environ_overrides={"REMOTE_ADDR": f"198.51.100.{n}"},
        )
        statuses.append(answer.status_code)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [303] * 5 + [429] * 3  # the per-address limit is 5 an hour
    assert take_in(svc).taken == 5
    with svc.sessions() as session:
        assert session.scalars(select(Subscriber.email)).all() == ["race@example.org"]
        assert len(session.scalars(select(Enrollment)).all()) == 1


def test_the_json_sign_up_past_the_limit_is_429_with_the_throttled_code(
    strict_app: Flask,
) -> None:
    web = strict_app.test_client()
    body = {"email": "ada@example.org", "sequence": "tiny", "consent": True}

    answers = [web.post("/api/subscriptions", json=body) for _ in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].get_json() == {
        "error": {
            "code": "throttled",
            "message": "Too many sign-ups for this address. Please try again in an hour.",
        }
    }
