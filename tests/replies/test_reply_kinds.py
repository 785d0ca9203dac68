"""Replies beyond a lesson's: to a broadcast, a bounce that lands at the reply address, the
`reader.replied` webhook, the count on the sequence page, and no signed address without
DRIP_REPLY_ADDRESS (today's behaviour)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.app import create_app
from drip.audience.readers import erase_readers
from drip.core.clock import FrozenClock
from drip.core.config import Settings
from drip.dispatch.broadcasts import read_broadcast, schedule
from drip.integrations import hooks
from drip.jobs.worker import dispatch_job
from drip.mail.reply_address import read_reply_address
from drip.services import Services
from drip.store.models import BounceEvent, Reply, Subscriber, WebhookDelivery
from tests.conftest import CHEAP_HASHER, TESTS, make_settings
from tests.deliverability.test_bounce_mailbox import Mailbox, fixture
from tests.deliverability.test_bounces import sign_up
from tests.imap import Dovecot
from tests.integrations.test_webhooks_out import LOOPBACK_ALLOWED
from tests.smtp import Received, SmtpServer
from tests.web.test_admin_access import add_operator, log_in

REPLY = "reply@drip.test"
BOUNCES = "bounces@drip.test"
POSTMARK = "postmark:inbound-password"
AUTH = {"Authorization": "Basic " + base64.b64encode(POSTMARK.encode()).decode()}


@pytest.fixture
def settings(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, dovecot: Dovecot
) -> Settings:
    return make_settings(
        tmp_path,
        sqlite_url,
        smtp_url=smtp_server.url,
        reply_address=REPLY,
        reply_imap_url=dovecot.url,
        bounce_address=BOUNCES,
        postmark_auth=POSTMARK,
    )


def postmark_reply(web: FlaskClient, to: str, text: str, ident: str) -> str:
    post = {
        "FromFull": {"Email": "ada@example.org"},
        "ToFull": [{"Email": to}],
        "Subject": "Re: your email",
        "TextBody": text,
        "MessageID": ident,
    }
    answer = web.post("/webhooks/postmark/inbound", json=post, headers=AUTH)
    assert answer.status_code == 200
    return str(answer.get_json()["status"])


def owner(app: Flask) -> FlaskClient:
    add_operator(app.extensions["drip"])
    web = app.test_client()
    assert log_in(web).status_code == 302
    return web


def test_a_reply_to_a_broadcast_names_the_broadcast(
    app: Flask,
    svc: Services,
    welcome: Received,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    path = tmp_path / "news.md"
    path.write_text('---\nsubject: "News"\nto: [tiny]\n---\nHi, news.\n')
    library = svc.content.library()
    with svc.sessions() as session:
        broadcast = schedule(session, library, read_broadcast(path, library), clock(), clock())
        broadcast_id = broadcast.id
    for _ in range(8):
        svc.dispatcher().run_pass(clock())
        clock.advance(hours=1)
    (news,) = [m for m in smtp_server.messages if m.subject == "News"]
    found = read_reply_address(news.message["Reply-To"], "test-secret", base=REPLY)
    assert found is not None and found.label == f"broadcast-{broadcast_id}"

    assert (
        postmark_reply(app.test_client(), news.message["Reply-To"], "Loved it", "b1") == "matched"
    )
    with svc.sessions() as session:
        (reply,) = session.scalars(select(Reply))
        assert (reply.sequence, reply.lesson) == ("tiny", f"broadcast-{broadcast_id}")


def test_a_bounce_that_lands_at_the_reply_address_goes_to_the_bounce_handling(
    svc: Services, welcome: Received, dovecot: Dovecot
) -> None:
    box = Mailbox(dovecot)
    try:
        message_id = welcome.message["Message-ID"]
        box.append(fixture("postfix-hard.eml", verp=welcome.sender, message_id=message_id))
    finally:
        box.close()
    dispatch_job(svc, svc.dispatcher())
    with svc.sessions() as session:
        (event,) = session.scalars(select(BounceEvent))
        assert (event.kind, event.verified) == ("hard", True)
        assert session.scalars(select(Reply)).all() == []
        ada = session.scalars(select(Subscriber)).one()
        assert ada.suppressed_at is not None


def test_a_matched_reply_fires_reader_replied_and_an_unmatched_one_does_not(
    app: Flask, svc: Services, welcome: Received, clock: FrozenClock
) -> None:
    with svc.sessions() as session:
        hooks.add_endpoint(
            session, "http://127.0.0.1:9/hook", ["reader.replied"], clock(), reach=LOOPBACK_ALLOWED
        )
        session.commit()
    web = app.test_client()
    assert postmark_reply(web, "reply+r1.welcome.0123456789abcdef@drip.test", "x", "f1") == (
        "unmatched"
    )
    assert postmark_reply(web, welcome.message["Reply-To"], "Thanks!", "m1") == "matched"
    with svc.sessions() as session:
        hooks.collect(session, clock())
        session.commit()
        (queued,) = session.scalars(select(WebhookDelivery))
    data = json.loads(queued.payload)["data"]
    assert queued.type == "reader.replied"
    assert (data["reader"]["email"], data["sequence"], data["detail"]) == (
        "ada@example.org",
        "tiny",
        "welcome: Re: your email",
    )


def test_the_sequence_page_counts_replies_per_lesson_and_links_to_them(
    app: Flask, welcome: Received
) -> None:
    web = owner(app)
    assert postmark_reply(web, welcome.message["Reply-To"], "One", "s1") == "matched"
    assert postmark_reply(web, welcome.message["Reply-To"], "Two", "s2") == "matched"
    page = web.get("/admin/sequences/tiny").text
    assert '<a href="/admin/replies?sequence=tiny&amp;lesson=welcome">2</a>' in page
    filtered = web.get("/admin/replies?sequence=tiny&lesson=welcome").text
    assert "One" in filtered and "Two" in filtered
    assert "Two" not in web.get("/admin/replies?sequence=tiny&lesson=second").text


def test_without_a_reply_address_lessons_answer_to_the_sequences_own_reply_to(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", root)
    yaml = root / "tiny" / "sequence.yaml"
    yaml.write_text(yaml.read_text() + 'reply_to: "author@example.org"\n')
    settings = make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=root)
    application = create_app(settings, clock=clock, password_hasher=CHEAP_HASHER)
    services: Services = application.extensions["drip"]
    try:
        sign_up(services, "ada@example.org")
        services.dispatcher().run_pass(clock())
    finally:
        services.engine.dispose()
    (message,) = smtp_server.messages
    assert message.message["Reply-To"] == "author@example.org"


def test_erasing_a_reader_erases_their_replies_matched_or_not(
    app: Flask, svc: Services, welcome: Received
) -> None:
    web = owner(app)
    assert postmark_reply(web, welcome.message["Reply-To"], "Mine", "e1") == "matched"
    assert postmark_reply(web, "reply@drip.test", "Unsigned, mine too", "e2") == "unmatched"
    with svc.sessions() as session:
        (ada,) = session.scalars(select(Subscriber))
        erase_readers(session, [ada.id], svc.settings)
        assert session.scalars(select(Reply)).all() == []


def test_the_same_reply_brought_twice_is_kept_once(app: Flask, welcome: Received) -> None:
    post = {
        "FromFull": {"Email": "ada@example.org"},
        "ToFull": [{"Email": welcome.message["Reply-To"]}],
        "Subject": "Re: Welcome",
        "TextBody": "Once",
        "MessageID": "postmark-own-id",
        "Headers": [{"Name": "Message-ID", "Value": "<once@mail.example.org>"}],
    }
    web = app.test_client()
    first = web.post("/webhooks/postmark/inbound", json=post, headers=AUTH).get_json()
    again = web.post("/webhooks/postmark/inbound", json=post, headers=AUTH).get_json()
    assert (first["status"], again["status"]) == ("matched", "duplicate")
