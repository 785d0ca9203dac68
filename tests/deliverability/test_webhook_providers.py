"""Each provider's webhook, with payloads shaped like theirs and signed the way they sign:
SES through SNS (RSA certificate), Postmark (basic auth), Mailgun (HMAC), SendGrid (ECDSA).
A wrong signature, an old timestamp and an unknown delivery each get their answer and
change nothing."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.app import create_app
from drip.core.clock import FrozenClock
from drip.core.config import Settings
from drip.deliverability.ses import sns_canonical
from drip.services import Services
from drip.store.models import EnrollmentStatus, Subscriber
from tests.conftest import json_body, make_settings
from tests.deliverability.test_bounces import sign_up, snapshot, statuses, subscriber
from tests.smtp import Received, SmtpServer

MAILGUN_KEY = "key-" + "7" * 32
POSTMARK = "postmark:" + "hook-password"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-01d088a6f77103d0fe307c0069e40ed6.pem"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:drip-ses-events"


@pytest.fixture(scope="module")
def sns_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[rsa.RSAPrivateKey, Path]:
    """A throwaway RSA key and a self-signed certificate standing in for SNS's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("sns") / "sns.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, path


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def settings(
    tmp_path: Path,
    sqlite_url: str,
    smtp_server: SmtpServer,
    sns_key: tuple[rsa.RSAPrivateKey, Path],
    sendgrid_key: ec.EllipticCurvePrivateKey,
) -> Settings:
    public = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return make_settings(
        tmp_path,
        sqlite_url,
        smtp_url=smtp_server.url,
        sns_certificate=sns_key[1],
        sns_topic_arns=(TOPIC,),
        postmark_auth=POSTMARK,
        mailgun_signing_key=MAILGUN_KEY,
        sendgrid_public_key=base64.b64encode(public).decode(),
    )


@pytest.fixture
def svc(app: Flask) -> Services:
    services: Services = app.extensions["drip"]
    return services


@pytest.fixture
def web(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def welcome(svc: Services, smtp_server: SmtpServer, clock: FrozenClock) -> Received:
    """Ada (in the tiny course) got the welcome lesson: the message providers report on."""
    sign_up(svc, "ada@example.org")
    svc.dispatcher().run_pass(clock())
    (message,) = smtp_server.messages
    return message


def suppressed(svc: Services) -> str | None:
    return subscriber(svc, "ada@example.org").suppressed_reason


def no_one_suppressed(svc: Services) -> bool:
    with svc.sessions() as session:
        return not session.scalars(
            select(Subscriber).where(Subscriber.suppressed_at.is_not(None))
        ).all()


# -- Amazon SES through SNS ---------------------------------------------------------------


def sns_post(
    web: FlaskClient, key: rsa.RSAPrivateKey, message: dict[str, Any], version: str = "1"
) -> Any:
    """Sign as SNS does: the canonical string, SHA1 (version 1) or SHA256 (version 2)."""
    message = {
        **message,
        "SignatureVersion": version,
        "SigningCertURL": message.get("SigningCertURL", CERT_URL),
    }
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(sns_canonical(message), padding.PKCS1v15(), algorithm)
    message["Signature"] = base64.b64encode(signature).decode()
    return web.post(
        "/webhooks/ses",
        data=json.dumps(message),
        headers={
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": message["Type"],
        },
    )


def ses_notification(
    clock: FrozenClock, notification: dict[str, Any], message_id: str = "<drip.1.welcome@drip.test>"
) -> dict[str, Any]:
    notification["mail"] = {
        "timestamp": clock().isoformat(),
        "source": "author@example.org",
        "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/example.org",
        "messageId": "0102018e0b1d5a7e-6f7c1a9e-8a5b-4a7e-9c1e-1f6a2b3c4d5e-000000",
        "destination": ["ada@example.org"],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "Tiny Author <author@example.org>"},
            {"name": "To", "value": "ada@example.org"},
            {"name": "Message-ID", "value": message_id},
        ],
        "commonHeaders": {
            "from": ["Tiny Author <author@example.org>"],
            "to": ["ada@example.org"],
            "messageId": message_id,
            "subject": "Welcome, Ada",
        },
    }
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Message": json.dumps(notification),
        "Timestamp": clock().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
    }


def ses_bounce(
    clock: FrozenClock,
    message_id: str,
    bounce_type: str = "Permanent",
    email: str = "ada@example.org",
) -> dict[str, Any]:
    return ses_notification(
        clock,
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": bounce_type,
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": email,
                        "action": "failed",
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
                "timestamp": clock().isoformat(),
                "feedbackId": "0102018e0b1d5f3c-feedback",
                "reportingMTA": "dsn; a8-30.smtp-out.amazonses.com",
            },
        },
        message_id,
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_permanent_bounce_signed_by_sns_suppresses_the_reader(
    web: FlaskClient,
    svc: Services,
    welcome: Received,
    clock: FrozenClock,
    sns_key: tuple[rsa.RSAPrivateKey, Path],
    version: str,
) -> None:
    answer = sns_post(web, sns_key[0], ses_bounce(clock, welcome.message["Message-ID"]), version)
    assert answer.status_code == 200, answer.json
    assert suppressed(svc) == "hard bounce (ses): Permanent: 5.1.1 smtp; 550 5.1.1 user unknown"
    assert statuses(svc) == {"tiny": EnrollmentStatus.SUPPRESSED}


def test_ses_transient_bounce_counts_and_complaint_unsubscribes(
    web: FlaskClient,
    svc: Services,
    welcome: Received,
    clock: FrozenClock,
    sns_key: tuple[rsa.RSAPrivateKey, Path],
) -> None:
    transient = sns_post(
        web, sns_key[0], ses_bounce(clock, welcome.message["Message-ID"], "Transient")
    )
    assert json_body(transient)["results"][0]["outcome"] == "soft bounce 1 of 3"
    complaint = ses_notification(
        clock,
        {
            "notificationType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": "ada@example.org"}],
                "timestamp": clock().isoformat(),
                "feedbackId": "0102018e-complaint",
                "complaintFeedbackType": "abuse",
                "userAgent": "Yahoo!-Mail-Feedback/2.0",
            },
        },
        welcome.message["Message-ID"],
    )
    complaint["MessageId"] = "5b1e5e0a-complaint"
    assert sns_post(web, sns_key[0], complaint).status_code == 200
    assert statuses(svc) == {"tiny": EnrollmentStatus.UNSUBSCRIBED}
    assert suppressed(svc) == "spam complaint (ses): abuse"


def test_ses_subscription_confirmation_is_verified_and_its_url_logged_not_fetched(
    web: FlaskClient,
    svc: Services,
    clock: FrozenClock,
    sns_key: tuple[rsa.RSAPrivateKey, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = (
        "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
        f"{TOPIC}&Token=2336412f37fb687f5d51e6e2425c464de"
    )
    before = snapshot(svc)
    with caplog.at_level(logging.WARNING, "drip.web.api.webhooks"):
        answer = sns_post(
            web,
            sns_key[0],
            {
                "Type": "SubscriptionConfirmation",
                "MessageId": "165545c9-2a5c-472c-8df2",
                "Token": "2336412f37fb687f5d51e6e2425c464de",
                "TopicArn": TOPIC,
                "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
                "SubscribeURL": url,
                "Timestamp": clock().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            },
        )
    assert answer.status_code == 200
    assert url in caplog.text
    assert snapshot(svc) == before


def test_ses_wrong_signature_old_timestamp_foreign_certificate_or_topic_unknown_delivery(
    web: FlaskClient,
    svc: Services,
    welcome: Received,
    clock: FrozenClock,
    sns_key: tuple[rsa.RSAPrivateKey, Path],
) -> None:
    before = snapshot(svc)
    message_id = welcome.message["Message-ID"]
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = sns_post(web, impostor, ses_bounce(clock, message_id))
    assert (wrong.status_code, json_body(wrong)["error"]) == (
        401,
        "the SNS signature does not match the message",
    )
    old = ses_bounce(clock, message_id)
    old["Timestamp"] = (clock() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert sns_post(web, sns_key[0], old).status_code == 401
    foreign = {
        **ses_bounce(clock, message_id),
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
    }
    assert (
        sns_post(web, sns_key[0], foreign)
        .json["error"]
        .startswith(
            "SigningCertURL 'https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem' is not"
        )
    )
    assert snapshot(svc) == before

    stranger_topic = {
        **ses_bounce(clock, message_id),
        "TopicArn": "arn:aws:sns:eu-west-1:999999999999:someone-else",
    }
    refused = sns_post(web, sns_key[0], stranger_topic)
    assert (refused.status_code, json_body(refused)["error"]) == (
        403,
        "SNS topic 'arn:aws:sns:eu-west-1:999999999999:someone-else' is not in DRIP_SNS_TOPIC_ARNS",
    )
    assert snapshot(svc) == before

    unknown = sns_post(
        web,
        sns_key[0],
        ses_bounce(clock, "<drip.999.welcome@drip.test>", email="stranger@example.org"),
    )
    assert unknown.status_code == 200
    assert json_body(unknown)["results"][0]["status"] == "unmatched"
    assert no_one_suppressed(svc)


def test_ses_with_no_topics_named_refuses_even_a_genuinely_signed_notification(
    settings: Settings,
    clock: FrozenClock,
    sns_key: tuple[rsa.RSAPrivateKey, Path],
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SNS signs any AWS account's topic: without DRIP_SNS_TOPIC_ARNS a stranger's own
    topic would pass, so /webhooks/ses accepts nothing until topics are named."""
    app = create_app(dataclasses.replace(settings, sns_topic_arns=()), clock=clock)
    svc: Services = app.extensions["drip"]
    try:
        sign_up(svc, "ada@example.org")
        svc.dispatcher().run_pass(clock())
        (welcome,) = smtp_server.messages
        before = snapshot(svc)
        stranger = {
            **ses_bounce(clock, welcome.message["Message-ID"]),
            "TopicArn": "arn:aws:sns:eu-west-1:999999999999:someone-else",
        }
        with caplog.at_level(logging.WARNING, logger="drip.web.api.webhooks"):
            refused = sns_post(app.test_client(), sns_key[0], stranger)
        assert (refused.status_code, json_body(refused)["error"]) == (
            403,
            "DRIP_SNS_TOPIC_ARNS is not set: /webhooks/ses accepts nothing until the SNS "
            "topics of your SES account are named there (SNS signs any AWS account's topic)",
        )
        assert "ses webhook refused (403): DRIP_SNS_TOPIC_ARNS is not set" in caplog.text
        assert snapshot(svc) == before
    finally:
        svc.engine.dispose()


# -- Postmark -----------------------------------------------------------------------------


def postmark_bounce(
    message_id: str,
    record: str = "Bounce",
    kind: str = "HardBounce",
    ident: int = 4323372036854775807,
) -> dict[str, Any]:
    return {
        "RecordType": record,
        "MessageStream": "outbound",
        "ID": ident,
        "Type": kind,
        "TypeCode": 1 if kind == "HardBounce" else 100001,
        "Name": "Hard bounce" if kind == "HardBounce" else "Spam complaint",
        "Tag": "",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message.",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "Email": "ada@example.org",
        "From": "author@example.org",
        "BouncedAt": "2026-03-02T13:05:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Welcome, Ada",
        "Content": f"Return-Path: <>\r\nMessage-ID: {message_id}\r\nSubject: Welcome",
    }


def basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def test_postmark_hard_bounce_and_spam_complaint_with_basic_auth(
    web: FlaskClient, svc: Services, welcome: Received
) -> None:
    message_id = welcome.message["Message-ID"]
    before = snapshot(svc)
    assert (
        web.post(
            "/webhooks/postmark", json=postmark_bounce(message_id), headers=basic("postmark:wrong")
        ).status_code
        == 401
    )
    assert web.post("/webhooks/postmark", json=postmark_bounce(message_id)).status_code == 401
    assert snapshot(svc) == before

    answer = web.post(
        "/webhooks/postmark", json=postmark_bounce(message_id), headers=basic(POSTMARK)
    )
    assert answer.status_code == 200
    assert suppressed(svc) == (
        "hard bounce (postmark): Hard bounce: smtp;550 5.1.1 The email "
        "account that you tried to reach does not exist"
    )
    complaint = web.post(
        "/webhooks/postmark",
        json=postmark_bounce(message_id, "SpamComplaint", "SpamComplaint", 42),
        headers=basic(POSTMARK),
    )
    assert json_body(complaint)["results"][0]["outcome"] == "unsubscribed and suppressed"
    assert statuses(svc) == {"tiny": EnrollmentStatus.UNSUBSCRIBED}


# -- Mailgun ------------------------------------------------------------------------------


def mailgun_payload(
    clock: FrozenClock,
    event: dict[str, Any],
    *,
    token: str | None = None,
    at: datetime | None = None,
    key: str = MAILGUN_KEY,
) -> dict[str, Any]:
    timestamp = str(int((at or clock()).timestamp()))
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event,
    }


def mailgun_failed(
    message_id: str, severity: str = "permanent", ident: str = "G9Bn5sl1TC6nu79C8C0bwg"
) -> dict[str, Any]:
    return {
        "event": "failed",
        "severity": severity,
        "id": ident,
        "reason": "bounce",
        "timestamp": 1772456700.375624,
        "recipient": "ada@example.org",
        "log-level": "error",
        "recipient-domain": "example.org",
        "envelope": {
            "sender": "author@example.org",
            "transport": "smtp",
            "targets": "ada@example.org",
        },
        "delivery-status": {
            "code": 550,
            "attempt-no": 1,
            "description": "mailbox does not exist",
            "message": "5.1.1 The email account does not exist",
        },
        "message": {
            "headers": {
                "to": "ada@example.org",
                "from": "author@example.org",
                "subject": "Welcome, Ada",
                "message-id": message_id.strip("<>"),
            },
            "attachments": [],
            "size": 4120,
        },
    }


def test_mailgun_permanent_failure_and_complaint_signed_with_the_signing_key(
    web: FlaskClient, svc: Services, welcome: Received, clock: FrozenClock
) -> None:
    message_id = welcome.message["Message-ID"]
    temporary = web.post(
        "/webhooks/mailgun",
        json=mailgun_payload(clock, mailgun_failed(message_id, "temporary", "temp-1")),
    )
    assert json_body(temporary)["results"][0]["outcome"] == "soft bounce 1 of 3"
    answer = web.post("/webhooks/mailgun", json=mailgun_payload(clock, mailgun_failed(message_id)))
    assert answer.status_code == 200
    assert suppressed(svc) == (
        "hard bounce (mailgun): 550 mailbox does not exist 5.1.1 The email account does not exist"
    )
    complained = {
        "event": "complained",
        "id": "-Agny091SquKnsrW2NEKUA",
        "recipient": "ada@example.org",
        "timestamp": 1772456800.1,
        "message": {"headers": {"message-id": message_id.strip("<>")}},
    }
    assert web.post("/webhooks/mailgun", json=mailgun_payload(clock, complained)).status_code == 200
    assert statuses(svc) == {"tiny": EnrollmentStatus.UNSUBSCRIBED}


def test_mailgun_wrong_signature_old_timestamp_and_replayed_token_change_nothing(
    web: FlaskClient, svc: Services, welcome: Received, clock: FrozenClock
) -> None:
    event = mailgun_failed(welcome.message["Message-ID"])
    before = snapshot(svc)
    forged = web.post("/webhooks/mailgun", json=mailgun_payload(clock, event, key="guess"))
    assert forged.status_code == 401
    old = web.post(
        "/webhooks/mailgun", json=mailgun_payload(clock, event, at=clock() - timedelta(minutes=6))
    )
    assert (old.status_code, json_body(old)["error"].endswith("refused as a replay")) == (401, True)
    assert snapshot(svc) == before

    harmless = mailgun_payload(
        clock, {"event": "delivered", "id": "d-1", "recipient": "ada@example.org"}
    )
    assert web.post("/webhooks/mailgun", json=harmless).status_code == 200
    after_first = snapshot(svc)
    replay = web.post("/webhooks/mailgun", json={**harmless, "event-data": event})
    assert replay.status_code == 406
    assert snapshot(svc) == after_first
    assert no_one_suppressed(svc)

    unknown = mailgun_failed("<drip.999.welcome@drip.test>", ident="x-2")
    unknown["recipient"] = "stranger@example.org"
    answer = web.post("/webhooks/mailgun", json=mailgun_payload(clock, unknown))
    assert json_body(answer)["results"][0]["status"] == "unmatched"


# -- SendGrid -----------------------------------------------------------------------------


def sendgrid_post(
    web: FlaskClient, key: ec.EllipticCurvePrivateKey, events: list[Any], at: datetime
) -> Any:
    """Sign as SendGrid does: ECDSA/SHA-256 over the timestamp then the raw body."""
    body = json.dumps(events).encode()
    timestamp = str(int(at.timestamp()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return web.post(
        "/webhooks/sendgrid",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        },
    )


def sendgrid_event(name: str, message_id: str, ident: str, **extra: Any) -> dict[str, Any]:
    return {
        "email": "ada@example.org",
        "timestamp": 1772456700,
        "smtp-id": message_id,
        "event": name,
        "category": ["drip"],
        "sg_event_id": ident,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        **extra,
    }


def test_sendgrid_bounce_dropped_and_spamreport_with_the_signed_event_webhook(
    web: FlaskClient,
    svc: Services,
    welcome: Received,
    clock: FrozenClock,
    sendgrid_key: ec.EllipticCurvePrivateKey,
) -> None:
    message_id = welcome.message["Message-ID"]
    events = [
        sendgrid_event("delivered", message_id, "e0", response="250 OK"),
        sendgrid_event(
            "bounce",
            message_id,
            "e1",
            type="blocked",
            status="4.7.1",
            reason="421 4.7.1 try again later",
        ),
        sendgrid_event(
            "bounce",
            message_id,
            "e2",
            type="bounce",
            status="5.0.0",
            reason="550 5.1.1 unknown user",
        ),
    ]
    answer = sendgrid_post(web, sendgrid_key, events, clock())
    assert [r["outcome"] for r in json_body(answer)["results"]] == [
        "soft bounce 1 of 3",
        "suppressed",
    ]
    assert suppressed(svc) == "hard bounce (sendgrid): bounce: 5.0.0 550 5.1.1 unknown user"
    spam = sendgrid_post(
        web,
        sendgrid_key,
        [
            sendgrid_event("spamreport", message_id, "e3"),
            sendgrid_event("dropped", message_id, "e4", reason="Bounced Address"),
        ],
        clock(),
    )
    assert [r["outcome"] for r in json_body(spam)["results"]] == [
        "unsubscribed and suppressed",
        "suppressed",
    ]
    assert statuses(svc) == {"tiny": EnrollmentStatus.UNSUBSCRIBED}


def test_sendgrid_wrong_signature_old_timestamp_and_unknown_delivery(
    web: FlaskClient,
    svc: Services,
    welcome: Received,
    clock: FrozenClock,
    sendgrid_key: ec.EllipticCurvePrivateKey,
) -> None:
    events = [
        sendgrid_event(
            "bounce",
            welcome.message["Message-ID"],
            "e1",
            type="bounce",
            status="5.0.0",
            reason="550 unknown user",
        )
    ]
    before = snapshot(svc)
    other = ec.generate_private_key(ec.SECP256R1())
    assert sendgrid_post(web, other, events, clock()).status_code == 401
    assert (
        sendgrid_post(web, sendgrid_key, events, clock() - timedelta(minutes=10)).status_code == 401
    )
    body = json.dumps(events).encode()
    assert web.post("/webhooks/sendgrid", data=body).status_code == 401  # unsigned
    assert snapshot(svc) == before

    stranger = [
        {
            **events[0],
            "email": "stranger@example.org",
            "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
            "sg_event_id": "e9",
        }
    ]
    answer = sendgrid_post(web, sendgrid_key, stranger, clock())
    assert json_body(answer)["results"][0]["status"] == "unmatched"
    assert no_one_suppressed(svc)


def test_a_provider_whose_setting_is_unset_accepts_nothing(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    application = create_app(make_settings(tmp_path, sqlite_url), clock=clock)
    web = application.test_client()
    for provider in ("bounce", "postmark", "mailgun", "sendgrid"):
        answer = web.post(f"/webhooks/{provider}", json={})
        assert answer.status_code == 403, provider
        assert "is not set" in json_body(answer)["error"]
    application.extensions["drip"].engine.dispose()
