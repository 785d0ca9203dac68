"""Readers' replies end to end: a real Dovecot holding a matched reply, an auto-reply and a
forged one, and a Postmark inbound post signed with basic auth; Mailgun's and SES's inbound
posts signed as each provider signs. Matched replies land under Replies with their lesson;
the auto-reply and the forged one change nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.core.clock import FrozenClock
from drip.core.config import Settings
from drip.deliverability.ses import sns_canonical
from drip.jobs.worker import dispatch_job
from drip.mail.reply_address import read_reply_address, reply_token
from drip.replies.mailbox import LEFT
from drip.services import Services
from drip.store.models import Enrollment, EnrollmentStatus, Event, EventKind, Reply
from tests.conftest import TESTS, make_settings
from tests.deliverability.test_bounce_mailbox import Mailbox
from tests.deliverability.test_webhook_providers import CERT_URL, TOPIC, sns_key
from tests.imap import Dovecot
from tests.smtp import Received, SmtpServer
from tests.web.test_admin_access import add_operator, csrf_token, log_in

__all__ = ["sns_key"]  # the fixture, shared with the bounce webhooks' tests
REPLY = "reply@drip.test"
POSTMARK = "postmark:inbound-password"
MAILGUN_KEY = "key-" + "5" * 32


@pytest.fixture
def courses(tmp_path: Path) -> Path:
    """The tiny course with `pause_on_reply: true`, and the author's forward address."""
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", root)
    yaml = root / "tiny" / "sequence.yaml"
    yaml.write_text(yaml.read_text() + "pause_on_reply: true\n")
    (root / "site.yaml").write_text("forward_replies_to: author@example.org\n")
    return root


@pytest.fixture
def settings(
    tmp_path: Path,
    backend_url: str,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    courses: Path,
    sns_key: tuple[rsa.RSAPrivateKey, Path],
) -> Settings:
    return make_settings(
        tmp_path,
        backend_url,
        sequences_dir=courses,
        smtp_url=smtp_server.url,
        reply_address=REPLY,
        reply_imap_url=dovecot.url,
        postmark_auth=POSTMARK,
        mailgun_signing_key=MAILGUN_KEY,
        sns_certificate=sns_key[1],
        sns_topic_arns=(TOPIC,),
    )


def reply_mail(
    to: str, subject: str, body: str, *extra: str, sender: str = "ada@example.org"
) -> bytes:
    lines = [
        f"From: Ada <{sender}>",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: <{hashlib.sha256((to + subject).encode()).hexdigest()[:20]}@example.org>",
        "Date: Sun, 06 Dec 2026 18:00:00 +0000",
        *extra,
        "Content-Type: text/plain; charset=utf-8",
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


def state(svc: Services) -> list[tuple[Any, ...]]:
    """What a forged or automatic reply must not change: enrollments and the timeline."""
    with svc.sessions() as session:
        enrollments = [
            (e.id, e.status, e.next_lesson, e.due_at) for e in session.scalars(select(Enrollment))
        ]
        events = [(e.kind, e.detail) for e in session.scalars(select(Event).order_by(Event.id))]
    return [*enrollments, *events]


def replies(svc: Services) -> list[Reply]:
    with svc.sessions() as session:
        rows = list(session.scalars(select(Reply).order_by(Reply.id)))
        session.expunge_all()
        return rows


def owner(app: Flask) -> FlaskClient:
    add_operator(app.extensions["drip"])
    web = app.test_client()
    assert log_in(web).status_code == 302
    return web


def test_every_lesson_answers_to_a_signed_reply_address_of_its_own_delivery(
    svc: Services, welcome: Received
) -> None:
    reply_to = welcome.message["Reply-To"]
    assert reply_to.startswith("reply+r") and reply_to.endswith("@drip.test")
    found = read_reply_address(reply_to, "test-secret", base=REPLY)
    assert found is not None and found.label == "welcome"
    # the same address made under another key, or for another reader, does not verify
    assert read_reply_address(reply_to, "another-secret", base=REPLY) is None
    forged = f"reply+{reply_token('guess', found.enrollment_id + 1, 'welcome')}@drip.test"
    assert read_reply_address(forged, "test-secret", base=REPLY) is None
    # after a rotation, the old key's address still reads
    assert read_reply_address(reply_to, "new-secret", ("test-secret",), REPLY) == found


def test_the_mailbox_and_postmark_replies_appear_under_replies_and_the_others_change_nothing(
    app: Flask,
    svc: Services,
    welcome: Received,
    dovecot: Dovecot,
    smtp_server: SmtpServer,
    clock: FrozenClock,
) -> None:
    reply_to = welcome.message["Reply-To"]
    forged_to = f"reply+{reply_token('not-our-secret', 1, 'welcome')}@drip.test"
    box = Mailbox(dovecot)
    try:
        box.append(
            reply_mail(
                reply_to,
                "Re: Welcome, Ada",
                "Thank you, this helped!\r\n\r\nOn Sun, Ada wrote:\r\n> Welcome",
            )
        )
        box.append(
            reply_mail(
                reply_to,
                "Automatic reply: Welcome, Ada",
                "I am away.",
                "Auto-Submitted: auto-replied",
            )
        )
        box.append(
            reply_mail(forged_to, "Re: Welcome", "Pause everyone!", sender="mallory@example.net")
        )
        before = state(svc)
        dispatch_job(svc, svc.dispatcher())  # the worker: the reply mailbox, then the pass
        ((subject, flags),) = box.subjects("INBOX")
        assert subject == "Automatic reply: Welcome, Ada" and LEFT in flags
        assert sorted(s for s, _ in box.subjects("drip-processed")) == [
            "Re: Welcome",
            "Re: Welcome, Ada",
        ]
    finally:
        box.close()

    postmark = {
        "FromFull": {"Email": "ada@example.org", "Name": "Ada"},
        "ToFull": [{"Email": reply_to, "Name": ""}],
        "OriginalRecipient": reply_to,
        "Subject": "Re: Welcome, Ada",
        "MessageID": "22c74902-a0c1-4511-804f2-341342852c90",
        "TextBody": "One more question about lesson one.",
        "Headers": [{"Name": "Message-ID", "Value": "<second@mail.example.org>"}],
    }
    auth = "Basic " + base64.b64encode(POSTMARK.encode()).decode()
    web = app.test_client()
    answer = web.post("/webhooks/postmark/inbound", json=postmark, headers={"Authorization": auth})
    assert answer.status_code == 200 and answer.get_json()["status"] == "matched"
    wrong = web.post(
        "/webhooks/postmark/inbound", json=postmark, headers={"Authorization": "Basic eDp5"}
    )
    assert wrong.status_code == 401

    rows = replies(svc)
    assert [(r.matched, r.source, r.lesson, r.sender) for r in rows] == [
        (True, "mailbox", "welcome", "ada@example.org"),
        (False, "mailbox", None, "mallory@example.net"),
        (True, "postmark", "welcome", "ada@example.org"),
    ]
    with svc.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        assert enrollment.status == EnrollmentStatus.PAUSED  # pause_on_reply holds lesson two
        kinds = [e.kind for e in session.scalars(select(Event).order_by(Event.id))]
    assert kinds.count(EventKind.REPLIED) == 2
    assert [x for x in state(svc) if x not in before] != []  # the matched ones did change things
    # the forwards went to the author through the same relay, answering to the reader
    forwards = [m for m in smtp_server.messages if m.recipients == ["author@example.org"]]
    assert [f.message["Reply-To"] for f in forwards] == ["ada@example.org"]

    page = owner(app).get("/admin/replies")
    assert page.status_code == 200
    assert "Thank you, this helped!" in page.text and "Welcome, Ada" in page.text
    assert "Quoted message" in page.text and "Pause everyone!" not in page.text
    assert f"/admin/readers/{rows[0].subscriber_id}" in page.text
    unmatched = owner_page(app, "/admin/replies?show=unmatched")
    assert "Pause everyone!" in unmatched


def owner_page(app: Flask, url: str) -> str:
    web = app.test_client()
    assert log_in(web).status_code == 302
    return web.get(url).text


def test_an_auto_reply_or_a_forged_reply_alone_changes_nothing(
    svc: Services, welcome: Received, dovecot: Dovecot
) -> None:
    box = Mailbox(dovecot)
    try:
        box.append(
            reply_mail(
                welcome.message["Reply-To"], "Out of Office: Welcome", "Away", "Precedence: bulk"
            )
        )
        box.append(reply_mail("reply+r1.welcome.0123456789abcdef@drip.test", "Re: hi", "forged"))
        box.append(reply_mail(REPLY, "Re: hi", "no token at all"))
    finally:
        box.close()
    before = state(svc)
    dispatch_job(svc, svc.dispatcher())
    assert state(svc)[: len(before)] == before
    with svc.sessions() as session:
        assert session.scalars(select(Event).where(Event.kind == EventKind.REPLIED)).all() == []
    assert [r.matched for r in replies(svc)] == [False, False]


def test_marking_the_reply_done_lets_the_held_lesson_go(
    app: Flask, svc: Services, welcome: Received, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    auth = "Basic " + base64.b64encode(POSTMARK.encode()).decode()
    post = {
        "FromFull": {"Email": "ada@example.org"},
        "ToFull": [{"Email": welcome.message["Reply-To"]}],
        "Subject": "Re: Welcome",
        "TextBody": "Question!",
        "MessageID": "abc",
    }
    assert (
        app.test_client()
        .post("/webhooks/postmark/inbound", json=post, headers={"Authorization": auth})
        .get_json()["status"]
        == "matched"
    )
    clock.advance(days=3)
    svc.dispatcher().run_pass(clock())
    sent = [m for m in smtp_server.messages if m.recipients == ["ada@example.org"]]
    assert len(sent) == 1  # lesson two waits for the reply
    web = owner(app)
    page = web.get("/admin/replies")
    (reply,) = replies(svc)
    done = web.post(f"/admin/replies/{reply.id}/done", data={"csrf_token": csrf_token(page.text)})
    assert done.status_code == 302
    assert replies(svc)[0].done_at is not None
    clock.advance(hours=1)
    svc.dispatcher().run_pass(clock())
    sent = [m for m in smtp_server.messages if m.recipients == ["ada@example.org"]]
    assert len(sent) == 2


def sns_post(web: FlaskClient, key: rsa.RSAPrivateKey, message: dict[str, Any]) -> Any:
    message = {**message, "SignatureVersion": "2", "SigningCertURL": CERT_URL}
    signature = key.sign(sns_canonical(message), padding.PKCS1v15(), hashes.SHA256())
    message["Signature"] = base64.b64encode(signature).decode()
    return web.post(
        "/webhooks/ses/inbound", data=json.dumps(message), headers={"Content-Type": "text/plain"}
    )


def test_ses_inbound_through_sns_is_matched_and_a_foreign_signature_refused(
    app: Flask,
    svc: Services,
    welcome: Received,
    sns_key: tuple[rsa.RSAPrivateKey, Path],
    clock: FrozenClock,
) -> None:
    raw = reply_mail(welcome.message["Reply-To"], "Re: Welcome, Ada", "Sent through SES.")
    notification = {
        "notificationType": "Received",
        "receipt": {
            "recipients": [welcome.message["Reply-To"]],
            "action": {"type": "SNS", "encoding": "BASE64", "topicArn": TOPIC},
        },
        "mail": {"source": "ada@example.org", "destination": [welcome.message["Reply-To"]]},
        "content": base64.b64encode(raw).decode(),
    }
    message = {
        "Type": "Notification",
        "MessageId": "sns-1",
        "TopicArn": TOPIC,
        "Message": json.dumps(notification),
        "Timestamp": clock().isoformat().replace("+00:00", "Z"),
    }
    web = app.test_client()
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert sns_post(web, impostor, message).status_code == 401
    assert replies(svc) == []
    answer = sns_post(web, sns_key[0], message)
    assert answer.status_code == 200 and answer.get_json()["status"] == "matched"
    assert [(r.source, r.lesson, r.body) for r in replies(svc)] == [
        ("ses", "welcome", "Sent through SES.")
    ]


def test_mailgun_inbound_signed_with_the_webhook_key_is_matched_once(
    app: Flask, svc: Services, welcome: Received, clock: FrozenClock
) -> None:
    timestamp, token = str(int(clock().timestamp())), "t" * 50
    signature = hmac.new(
        MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    form = {
        "timestamp": timestamp,
        "token": token,
        "signature": signature,
        "recipient": welcome.message["Reply-To"],
        "sender": "ada@example.org",
        "from": "Ada <ada@example.org>",
        "subject": "Re: Welcome, Ada",
        "body-plain": "Through Mailgun.",
        "message-headers": json.dumps([["Message-Id", "<mg@mail.example.org>"]]),
    }
    web = app.test_client()
    bad = web.post("/webhooks/mailgun/inbound", data={**form, "signature": "0" * 64})
    assert bad.status_code == 401
    answer = web.post("/webhooks/mailgun/inbound", data=form)
    assert answer.status_code == 200 and answer.get_json()["status"] == "matched"
    assert web.post("/webhooks/mailgun/inbound", data=form).status_code == 406  # a replay
    assert [(r.source, r.lesson, r.body) for r in replies(svc)] == [
        ("mailgun", "welcome", "Through Mailgun.")
    ]
