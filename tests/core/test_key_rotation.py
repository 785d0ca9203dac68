"""Rotating DRIP_SECRET_KEY with the old key in DRIP_SECRET_KEY_FALLBACKS: mail sent under
the old key keeps working (its links, its bounces) and operators stay logged in, while all
that is new is signed with the new key alone. Real mail through aiosmtpd, real SQLite."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from drip.app import create_app
from drip.content.embed import embed_tags, embed_token
from drip.core.clock import FrozenClock
from drip.core.config import ConfigError, load_settings
from drip.deliverability.bounces import Policy, Report, record_bounce
from drip.deliverability.verp import read_verp, verp_token
from drip.mail.links import LinkError, Links
from drip.mail.message_ids import new_message_id, read_message_ids
from drip.services import Services
from drip.store.models import Enrollment
from tests.conftest import CHEAP_HASHER, enroll, make_settings
from tests.smtp import SmtpServer
from tests.web.test_admin_access import add_operator, csrf_token, log_in
from tests.web.test_public_signup import open_confirmation

KEY_A = "the-key-before-the-rotation"
KEY_B = "the-key-after-the-rotation"
BOUNCES = "bounces@drip.test"


@dataclass(frozen=True)
class SentUnderA:
    """What the world holds from before the rotation: mail in inboxes, an operator's cookie."""

    unsubscribe: str  # the path of Ada's lesson's one-click unsubscribe link
    confirm: str  # the path of Bob's confirmation link
    return_path: str  # the VERP envelope sender of Ada's lesson
    message_id: str  # the Message-ID of Bob's confirmation email
    cookie: str  # an operator's session cookie
    csrf: str  # the CSRF token of a form that operator had open


@contextmanager
def drip_app(
    tmp_path: Path, url: str, smtp: SmtpServer, clock: FrozenClock, key: str, *fallbacks: str
) -> Iterator[Flask]:
    """drip on one database and data folder, under `key` with these fallbacks."""
    settings = make_settings(
        tmp_path,
        url,
        smtp_url=smtp.url,
        bounce_address=BOUNCES,
        secret_key=key,
        secret_key_fallbacks=fallbacks,
    )
    app = create_app(settings, clock=clock, password_hasher=CHEAP_HASHER)
    app.config["TESTING"] = True
    try:
        yield app
    finally:
        app.extensions["drip"].engine.dispose()


@pytest.fixture
def sent_under_a(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> SentUnderA:
    """Ada's first lesson and Bob's confirmation email, sent under key A; an operator logged in."""
    with drip_app(tmp_path, sqlite_url, smtp_server, clock, KEY_A) as app:
        svc: Services = app.extensions["drip"]
        enroll(svc, "ada@example.org")
        enroll(svc, "bob@example.org", confirmed=False)
        add_operator(svc)
        operator = app.test_client()
        assert log_in(operator).status_code == 302
        open_form = csrf_token(operator.get("/confirm/forged").text)
        cookie = operator.get_cookie("session")
        assert cookie is not None
        svc.dispatcher().run_pass(clock())
    (lesson,) = smtp_server.to("ada@example.org")
    (confirmation,) = smtp_server.to("bob@example.org")
    unsubscribe = re.search(
        r"<http://drip\.test(/unsubscribe/[^>]+)>", str(lesson.message["List-Unsubscribe"])
    )
    confirm = re.search(r"http://drip\.test(/confirm/\S+)", confirmation.text())
    assert unsubscribe and confirm
    return SentUnderA(
        unsubscribe=unsubscribe[1],
        confirm=confirm[1],
        return_path=lesson.sender,
        message_id=str(confirmation.message["Message-ID"]),
        cookie=cookie.value,
        csrf=open_form,
    )


def bounce_both(app: Flask, sent: SentUnderA, clock: FrozenClock) -> tuple[str, str]:
    """A DSN for Ada's lesson proven only by its VERP address, and a complaint about Bob's
    confirmation proven only by its Message-ID (from a mailbox: the address proves nothing)."""
    svc: Services = app.extensions["drip"]
    policy = Policy.from_settings(svc.settings)
    reports = [
        Report(
            "hard", "ada@example.org", "mailbox", "k:verp", "mailbox", return_path=sent.return_path
        ),
        Report(
            "complaint",
            "bob@example.org",
            "mailbox",
            "k:mid",
            "mailbox",
            message_id=sent.message_id,
        ),
    ]
    with svc.sessions() as session:
        by_verp, by_message_id = (record_bounce(session, r, clock(), policy) for r in reports)
        session.commit()
    return by_verp.status, by_message_id.status


def resend(web: FlaskClient, sent: SentUnderA) -> TestResponse:
    """The form the operator had open before the rotation, sent after it."""
    data = {"csrf_token": sent.csrf, "purpose": "confirm", "email": "bob@example.org"}
    return web.post("/resend", data=data)


def statuses(app: Flask) -> dict[str, str]:
    svc: Services = app.extensions["drip"]
    with svc.sessions() as session:
        return {e.subscriber.email: e.status for e in session.scalars(select(Enrollment))}


def test_mail_sent_under_the_old_key_works_after_rotating_with_it_as_a_fallback(
    tmp_path: Path,
    sqlite_url: str,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    sent_under_a: SentUnderA,
) -> None:
    with drip_app(tmp_path, sqlite_url, smtp_server, clock, KEY_B, KEY_A) as app:
        web = app.test_client()
        one_click = web.post(sent_under_a.unsubscribe, data={"List-Unsubscribe": "One-Click"})
        assert (one_click.status_code, one_click.text) == (200, "You are unsubscribed.\n")
        assert "You're in!" in open_confirmation(web, sent_under_a.confirm).text
        assert statuses(app) == {"ada@example.org": "unsubscribed", "bob@example.org": "active"}

        assert bounce_both(app, sent_under_a, clock) == ("applied", "applied")

        operator = app.test_client()
        operator.set_cookie("session", sent_under_a.cookie)
        assert operator.get("/admin/").status_code == 200
        assert resend(operator, sent_under_a).status_code == 200


def test_mail_sent_under_the_old_key_fails_after_rotating_without_a_fallback(
    tmp_path: Path,
    sqlite_url: str,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    sent_under_a: SentUnderA,
) -> None:
    with drip_app(tmp_path, sqlite_url, smtp_server, clock, KEY_B) as app:
        web = app.test_client()
        one_click = web.post(sent_under_a.unsubscribe, data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 400
        broken = web.get(sent_under_a.confirm)
        assert broken.status_code == 400 and "Email me a fresh link" in broken.text
        assert statuses(app) == {"ada@example.org": "active", "bob@example.org": "pending"}

        assert bounce_both(app, sent_under_a, clock) == ("unverified", "unverified")

        operator = app.test_client()
        operator.set_cookie("session", sent_under_a.cookie)
        assert operator.get("/admin/").status_code == 302
        assert resend(operator, sent_under_a).status_code == 400


def test_what_is_signed_after_rotating_uses_the_new_key_alone() -> None:
    rotated = Links(KEY_B, "http://drip.test", fallbacks=(KEY_A,))
    old_only = Links(KEY_A, "http://drip.test")
    token = rotated.token("unsubscribe", 7)

    assert token == Links(KEY_B, "http://drip.test").token("unsubscribe", 7)
    with pytest.raises(LinkError):
        old_only.read("unsubscribe", token)
    with pytest.raises(LinkError):
        old_only.read("confirm", rotated.token("confirm", 7))
    verp = f"bounces+{verp_token(KEY_B, delivery_id=3, enrollment_id=7)}@drip.test"
    assert read_verp(KEY_B, verp, fallbacks=(KEY_A,)) == ("d", 3)
    assert read_verp(KEY_A, verp) is None
    message_id = new_message_id(KEY_B, 7, "welcome", "drip.test")
    assert read_message_ids(KEY_B, message_id, (KEY_A,))
    assert read_message_ids(KEY_A, message_id) == []


def test_a_sign_up_form_pasted_before_rotating_still_posts_with_the_old_key_as_a_fallback() -> None:
    pasted = embed_token(KEY_A, "tiny", ("blog",))

    assert embed_tags(KEY_B, "tiny", pasted, (KEY_A,)) == ("blog",)
    assert embed_tags(KEY_B, "tiny", pasted) is None
    assert embed_tags(KEY_A, "tiny", embed_token(KEY_B, "tiny"), ()) is None


def test_fallbacks_holding_the_current_key_or_an_empty_entry_stop_start_up(
    tmp_path: Path,
) -> None:
    def load(fallbacks: str) -> tuple[str, ...]:
        environ = {
            "DRIP_DATA_DIR": str(tmp_path),
            "DRIP_SECRET_KEY": KEY_B,
            "DRIP_SECRET_KEY_FALLBACKS": fallbacks,
        }
        return load_settings(environ).secret_key_fallbacks

    assert load(f" {KEY_A} , older ") == (KEY_A, "older")
    with pytest.raises(ConfigError, match="holds the current DRIP_SECRET_KEY"):
        load(f"{KEY_A},{KEY_B}")
    for typo in (f"{KEY_A},,older", f"{KEY_A},", ""):
        with pytest.raises(ConfigError, match="DRIP_SECRET_KEY_FALLBACKS holds an empty entry"):
            load(typo)
