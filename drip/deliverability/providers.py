"""Each provider's webhook: how it signs, and what its payload says, as `Report`s.

No Flask here: each `*_reports` function takes the raw request parts and returns the
reports, or raises `Refused` with the HTTP status to answer and why. The shapes and the
signing follow each provider's documentation:

- Amazon SES through SNS: the SNS message signature (SignatureVersion 1, SHA1withRSA, or 2,
  SHA256withRSA) over the canonical "Key\\nValue\\n" string, with the certificate from a
  SigningCertURL on sns.<region>.amazonaws.com (or DRIP_SNS_CERTIFICATE);
- Postmark: HTTP basic auth, RecordType Bounce / SpamComplaint;
- Mailgun: HMAC-SHA256 of timestamp + token with the webhook signing key;
- SendGrid: ECDSA P-256 / SHA-256 over timestamp + raw body, key given as base64 DER.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from drip.deliverability.bounces import Kind, Report, event_key
from drip.store.models import WebhookToken

log = logging.getLogger(__name__)

MAX_AGE = timedelta(minutes=5)  # Mailgun and SendGrid: a signed timestamp older is a replay
SNS_MAX_AGE = timedelta(hours=1)  # SNS retries an HTTP endpoint within about a minute
SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
SNS_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
SNS_SUBSCRIPTION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_certificates: dict[str, x509.Certificate] = {}  # downloaded SNS certificates, by URL


class Refused(Exception):
    """The request is not accepted: `status` is the HTTP answer, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise Refused(400, f"the body is not JSON: {error}") from None
    except RecursionError:  # [[[[... a hundred thousand deep
        raise Refused(400, "the body is JSON nested too deeply to read") from None


def _fresh(stamp: datetime, now: datetime, limit: timedelta, what: str) -> None:
    if abs(now - stamp) > limit:
        raise Refused(
            401,
            f"{what} timestamp {stamp.isoformat()} is more than "
            f"{int(limit.total_seconds() // 60)} minutes from now: refused as "
            "a replay",
        )


# -- drip's own format ------------------------------------------------------------------------


def drip_reports(body: bytes, authorization: str, token: str) -> list[Report]:
    """`{"email", "type": "hard"|"soft"|"complaint", "message_id"?, "reason"?, "id"?}`, or a
    list of them, with `Authorization: Bearer <DRIP_WEBHOOK_TOKEN>`."""
    if not token:
        raise Refused(403, "DRIP_WEBHOOK_TOKEN is not set: /webhooks/bounce accepts nothing")
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise Refused(
            401, "missing or wrong bearer token (Authorization: Bearer <DRIP_WEBHOOK_TOKEN>)"
        )
    payload = _json(body)
    items = payload if isinstance(payload, list) else [payload]
    reports = []
    for index, item in enumerate(items):
        where = f"event {index}" if isinstance(payload, list) else "the event"
        if not isinstance(item, dict):
            raise Refused(400, f"{where} is not an object")
        email, kind = item.get("email"), item.get("type")
        if not isinstance(email, str) or "@" not in email:
            raise Refused(400, f'{where}: "email" must be an address, got {email!r}')
        if kind not in ("hard", "soft", "complaint"):
            raise Refused(400, f'{where}: "type" must be hard, soft or complaint, got {kind!r}')
        message_id = item.get("message_id")
        reason = item.get("reason") or ""
        ident = item.get("id")
        key = (
            f"drip:{str(ident)[:200]}"
            if ident is not None
            else event_key("drip", email.lower(), kind, message_id, reason)
        )
        reports.append(
            Report(
                kind,
                email,
                "drip",
                key,
                message_id=str(message_id or "") or None,
                diagnostic=str(reason),
            )
        )
    return reports


# -- Amazon SES through SNS -----------------------------------------------------------------


def _sns_certificate(url: str, local: Path | None) -> x509.Certificate:
    parts = urlsplit(url)
    if (
        parts.scheme != "https"
        or not SNS_HOST.match(parts.hostname or "")
        or not parts.path.endswith(".pem")
    ):
        raise Refused(
            401, f"SigningCertURL {url!r} is not an https .pem on sns.<region>.amazonaws.com"
        )
    try:
        if local is not None:
            return x509.load_pem_x509_certificate(local.read_bytes())
        if url not in _certificates:
            with urllib.request.urlopen(url, timeout=10) as answer:
                _certificates[url] = x509.load_pem_x509_certificate(answer.read())
    except (OSError, ValueError) as error:  # unreachable, or not a certificate
        raise Refused(401, f"the SNS signing certificate {url!r} cannot be read: {error}") from None
    return _certificates[url]


def sns_canonical(message: Mapping[str, Any]) -> bytes:
    """The string SNS signs: "Key\\nValue\\n" for each signed key present, in order."""
    keys = SNS_NOTIFICATION_KEYS if message.get("Type") == "Notification" else SNS_SUBSCRIPTION_KEYS
    return "".join(f"{key}\n{message[key]}\n" for key in keys if key in message).encode()


def verify_sns(
    message: Mapping[str, Any],
    local_certificate: Path | None,
    now: datetime,
) -> None:
    version = str(message.get("SignatureVersion", ""))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise Refused(401, f"unknown SNS SignatureVersion {version!r} (1 or 2)")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except binascii.Error:
        raise Refused(401, "the SNS Signature is not base64") from None
    if not signature:
        raise Refused(401, "the SNS message is not signed")
    certificate = _sns_certificate(str(message.get("SigningCertURL", "")), local_certificate)
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Refused(401, "the SNS signing certificate does not hold an RSA key")
    try:
        key.verify(signature, sns_canonical(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise Refused(401, "the SNS signature does not match the message") from None
    try:
        stamp = datetime.fromisoformat(str(message.get("Timestamp", "")).replace("Z", "+00:00"))
    except ValueError:
        raise Refused(400, "the SNS Timestamp is not an ISO 8601 time") from None
    _fresh(stamp, now, SNS_MAX_AGE, "SNS")


def _ses_message_id(mail: Mapping[str, Any]) -> str | None:
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            return str(header.get("value", ""))
    common = mail.get("commonHeaders") or {}
    value = common.get("messageId") if isinstance(common, dict) else None
    return str(value) if value else None


def ses_reports(
    body: bytes, local_certificate: Path | None, now: datetime, topics: tuple[str, ...]
) -> tuple[list[Report], str | None]:
    """The reports in one SNS POST, and the SubscribeURL of a subscription confirmation.
    Any AWS account's topic gets its messages signed by SNS: `topics` names ours, and with
    none named nothing is accepted (a stranger's topic would be as good as ours)."""
    if not topics:
        raise Refused(
            403,
            "DRIP_SNS_TOPIC_ARNS is not set: /webhooks/ses accepts nothing until the SNS "
            "topics of your SES account are named there (SNS signs any AWS account's topic)",
        )
    message = _json(body)
    if not isinstance(message, dict):
        raise Refused(400, "the SNS message is not an object")
    verify_sns(message, local_certificate, now)
    if message.get("TopicArn") not in topics:
        raise Refused(403, f"SNS topic {message.get('TopicArn')!r} is not in DRIP_SNS_TOPIC_ARNS")
    kind = message.get("Type")
    if kind == "SubscriptionConfirmation":
        return [], str(message.get("SubscribeURL", ""))
    if kind == "UnsubscribeConfirmation":
        log.warning("Amazon SNS unsubscribed /webhooks/ses from %s", message.get("TopicArn"))
        return [], None
    if kind != "Notification":
        raise Refused(400, f"unknown SNS message Type {kind!r}")
    notification = _json(str(message.get("Message", "")).encode())
    if not isinstance(notification, dict):
        raise Refused(400, "the SES notification is not an object")
    return _ses_notification(notification, str(message.get("MessageId", ""))), None


def _ses_notification(notification: Mapping[str, Any], sns_id: str) -> list[Report]:
    """The reports in one SES notification: a Bounce or a Complaint, one per recipient."""
    what = notification.get("notificationType") or notification.get("eventType")
    mail = notification.get("mail") or {}
    message_id = _ses_message_id(mail)
    source = str(mail.get("source") or "") or None
    reports = []
    if what == "Bounce":
        bounce = notification.get("bounce") or {}
        bounce_kind: Kind = "hard" if bounce.get("bounceType") == "Permanent" else "soft"
        for recipient in bounce.get("bouncedRecipients") or []:
            email = str(recipient.get("emailAddress", ""))
            diagnostic = " ".join(
                str(recipient[k]) for k in ("status", "diagnosticCode") if recipient.get(k)
            ) or str(bounce.get("bounceSubType", ""))
            reports.append(
                Report(
                    bounce_kind,
                    email,
                    "ses",
                    event_key("ses", sns_id, email.lower()),
                    message_id=message_id,
                    return_path=source,
                    diagnostic=f"{bounce.get('bounceType')}: {diagnostic}",
                )
            )
    elif what == "Complaint":
        complaint = notification.get("complaint") or {}
        for recipient in complaint.get("complainedRecipients") or []:
            email = str(recipient.get("emailAddress", ""))
            reports.append(
                Report(
                    "complaint",
                    email,
                    "ses",
                    event_key("ses", sns_id, email.lower()),
                    message_id=message_id,
                    return_path=source,
                    diagnostic=str(complaint.get("complaintFeedbackType") or "complaint"),
                )
            )
    else:
        log.info("SES notification %s ignored (only Bounce and Complaint matter)", what)
    return reports


# -- Postmark ---------------------------------------------------------------------------------

POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Blocked"}
POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError"}


def postmark_reports(body: bytes, authorization: str, credentials: str) -> list[Report]:
    if not credentials:
        raise Refused(403, "DRIP_POSTMARK_AUTH is not set: /webhooks/postmark accepts nothing")
    scheme, _, encoded = authorization.partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        given = b""
    if scheme.lower() != "basic" or not hmac.compare_digest(given, credentials.encode()):
        raise Refused(401, "missing or wrong HTTP basic auth (DRIP_POSTMARK_AUTH)")
    payload = _json(body)
    if not isinstance(payload, dict):
        raise Refused(400, "the Postmark record is not an object")
    record, kind_name = payload.get("RecordType"), str(payload.get("Type", ""))
    email = str(payload.get("Email", ""))
    kind: Kind
    if record == "SpamComplaint":
        kind = "complaint"
    elif record == "Bounce" and kind_name in POSTMARK_HARD:
        kind = "hard"
    elif record == "Bounce" and kind_name in POSTMARK_SOFT:
        kind = "soft"
    else:
        log.info("Postmark %s %s for %s ignored", record, kind_name, email)
        return []
    # Postmark's MessageID is its own; the dump of the message (Content) holds ours.
    content = str(payload.get("Content") or "")
    found = re.search(r"^Message-ID:\s*(<[^>]+>)", content, re.IGNORECASE | re.MULTILINE)
    diagnostic = ": ".join(str(payload[k]) for k in ("Name", "Details") if payload.get(k))
    ident = payload.get("ID")
    key = (
        f"postmark:{record}:{ident}"
        if ident is not None
        else event_key("postmark", json.dumps(payload, sort_keys=True))
    )
    return [
        Report(
            kind,
            email,
            "postmark",
            key,
            message_id=found.group(1) if found else None,
            diagnostic=diagnostic,
        )
    ]


# -- Mailgun ----------------------------------------------------------------------------------


def mailgun_reports(
    session: Session,
    body: bytes,
    signing_key: str,
    now: datetime,
) -> list[Report]:
    """Checks the signature and the timestamp, and refuses a token already used (the
    token is stored in the caller's transaction, with the events)."""
    if not signing_key:
        raise Refused(403, "DRIP_MAILGUN_SIGNING_KEY is not set: /webhooks/mailgun accepts nothing")
    payload = _json(body)
    signature = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signature, dict):
        raise Refused(400, 'no "signature" object in the Mailgun payload')
    timestamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
    expected = hmac.new(
        signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected.encode(), str(signature.get("signature", "")).encode()):
        raise Refused(401, "the Mailgun signature does not match (DRIP_MAILGUN_SIGNING_KEY)")
    try:
        stamp = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        raise Refused(400, f"the Mailgun timestamp {timestamp!r} is not a number") from None
    _fresh(stamp, now, MAX_AGE, "Mailgun")
    session.execute(delete(WebhookToken).where(WebhookToken.seen_at < now - 2 * MAX_AGE))
    if (
        session.scalar(
            select(WebhookToken.token).where(
                WebhookToken.provider == "mailgun", WebhookToken.token == token
            )
        )
        is not None
    ):
        raise Refused(406, "this Mailgun token was already used: refused as a replay")
    session.add(WebhookToken(provider="mailgun", token=token[:255], seen_at=now))
    data = payload.get("event-data") or {}
    event, severity = data.get("event"), data.get("severity")
    email = str(data.get("recipient", ""))
    kind: Kind
    if event == "failed" and severity == "permanent":
        kind = "hard"
    elif event == "failed" and severity == "temporary":
        kind = "soft"
    elif event == "complained":
        kind = "complaint"
    else:
        log.info("Mailgun event %s (%s) for %s ignored", event, severity, email)
        return []
    headers = (data.get("message") or {}).get("headers") or {}
    message_id = headers.get("message-id")
    status = data.get("delivery-status") or {}
    diagnostic = " ".join(
        str(status[k]) for k in ("code", "description", "message") if status.get(k)
    ) or str(data.get("reason") or event)
    envelope = data.get("envelope") or {}
    return [
        Report(
            kind,
            email,
            "mailgun",
            f"mailgun:{data.get('id') or token}",
            message_id=f"<{str(message_id).strip('<>')}>" if message_id else None,
            return_path=str(envelope.get("sender") or "") or None,
            diagnostic=diagnostic,
        )
    ]


# -- SendGrid ---------------------------------------------------------------------------------


def _sendgrid_key(encoded: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_der_public_key(base64.b64decode(encoded))
    except (ValueError, binascii.Error):
        raise Refused(500, "DRIP_SENDGRID_PUBLIC_KEY is not a base64 DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Refused(500, "DRIP_SENDGRID_PUBLIC_KEY is not an ECDSA key")
    return key


def sendgrid_reports(
    body: bytes,
    headers: Mapping[str, str],
    public_key: str,
    now: datetime,
) -> list[Report]:
    if not public_key:
        raise Refused(
            403, "DRIP_SENDGRID_PUBLIC_KEY is not set: /webhooks/sendgrid accepts nothing"
        )
    signature = headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
    timestamp = headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
    if not signature or not timestamp:
        raise Refused(
            401, "the SendGrid signature headers are missing (turn on the signed event webhook)"
        )
    try:
        _sendgrid_key(public_key).verify(
            base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused(
            401, "the SendGrid signature does not match (DRIP_SENDGRID_PUBLIC_KEY)"
        ) from None
    try:
        stamp = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        raise Refused(400, f"the SendGrid timestamp {timestamp!r} is not a number") from None
    _fresh(stamp, now, MAX_AGE, "SendGrid")
    events = _json(body)
    if not isinstance(events, list):
        raise Refused(400, "the SendGrid body is not a list of events")
    reports = []
    for event in events:
        if not isinstance(event, dict):
            continue
        name, email = event.get("event"), str(event.get("email", ""))
        reason = str(event.get("reason") or "")
        kind: Kind
        if name == "spamreport" or (name == "dropped" and "spam" in reason.lower()):
            kind = "complaint"
        elif name == "bounce" and event.get("type") == "blocked":
            kind = "soft"  # refused for now (reputation, content), not a dead address
        elif name in ("bounce", "dropped"):
            kind = "hard"
        else:
            continue
        diagnostic = " ".join(p for p in (str(event.get("status") or ""), reason) if p) or name
        ident = event.get("sg_event_id") or event_key("sendgrid", json.dumps(event, sort_keys=True))
        reports.append(
            Report(
                kind,
                email,
                "sendgrid",
                f"sendgrid:{ident}",
                message_id=str(event.get("smtp-id") or "") or None,
                diagnostic=f"{name}: {diagnostic}",
            )
        )
    return reports
