"""Amazon SES's bounces and complaints, through SNS: the SNS message signature (SignatureVersion
1, SHA1withRSA, or 2, SHA256withRSA) over the canonical "Key\\nValue\\n" string, with the
certificate from a SigningCertURL on sns.<region>.amazonaws.com (or DRIP_SNS_CERTIFICATE),
only for the topics named in DRIP_SNS_TOPIC_ARNS."""

from __future__ import annotations

import base64
import binascii
import logging
import re
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from drip.deliverability.bounces import Kind, Report, event_key
from drip.deliverability.webhook_input import Refused, Why, check_fresh, read_json

log = logging.getLogger(__name__)

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


def _sns_certificate(url: str, local: Path | None) -> x509.Certificate:
    parts = urlsplit(url)
    if (
        parts.scheme != "https"
        or not SNS_HOST.match(parts.hostname or "")
        or not parts.path.endswith(".pem")
    ):
        raise Refused(
            Why.UNAUTHENTICATED,
            f"SigningCertURL {url!r} is not an https .pem on sns.<region>.amazonaws.com",
        )
    try:
        if local is not None:
            return x509.load_pem_x509_certificate(local.read_bytes())
        if url not in _certificates:
            with urllib.request.urlopen(url, timeout=10) as answer:
                _certificates[url] = x509.load_pem_x509_certificate(answer.read())
    except (OSError, ValueError) as error:  # unreachable, or not a certificate
        raise Refused(
            Why.UNAUTHENTICATED, f"the SNS signing certificate {url!r} cannot be read: {error}"
        ) from None
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
        raise Refused(Why.UNAUTHENTICATED, f"unknown SNS SignatureVersion {version!r} (1 or 2)")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except binascii.Error:
        raise Refused(Why.UNAUTHENTICATED, "the SNS Signature is not base64") from None
    if not signature:
        raise Refused(Why.UNAUTHENTICATED, "the SNS message is not signed")
    certificate = _sns_certificate(str(message.get("SigningCertURL", "")), local_certificate)
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Refused(Why.UNAUTHENTICATED, "the SNS signing certificate does not hold an RSA key")
    try:
        key.verify(signature, sns_canonical(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise Refused(Why.UNAUTHENTICATED, "the SNS signature does not match the message") from None
    try:
        stamp = datetime.fromisoformat(str(message.get("Timestamp", "")).replace("Z", "+00:00"))
    except ValueError:
        raise Refused(Why.MALFORMED, "the SNS Timestamp is not an ISO 8601 time") from None
    check_fresh(stamp, now, SNS_MAX_AGE, "SNS")


def _ses_message_id(mail: Mapping[str, Any]) -> str | None:
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            return str(header.get("value", ""))
    common = mail.get("commonHeaders") or {}
    value = common.get("messageId") if isinstance(common, dict) else None
    return str(value) if value else None


def sns_message(
    body: bytes,
    local_certificate: Path | None,
    now: datetime,
    topics: tuple[str, ...],
    endpoint: str,
) -> dict[str, Any]:
    """One SNS POST to `endpoint`, read and verified: signed by SNS and from one of
    `topics`. Any AWS account's topic gets its messages signed by SNS: with no topic named
    nothing is accepted (a stranger's topic would be as good as ours)."""
    if not topics:
        raise Refused(
            Why.NOT_ACCEPTING,
            f"DRIP_SNS_TOPIC_ARNS is not set: {endpoint} accepts nothing until the SNS "
            "topics of your SES account are named there (SNS signs any AWS account's topic)",
        )
    message = read_json(body)
    if not isinstance(message, dict):
        raise Refused(Why.MALFORMED, "the SNS message is not an object")
    verify_sns(message, local_certificate, now)
    if message.get("TopicArn") not in topics:
        raise Refused(
            Why.NOT_ACCEPTING,
            f"SNS topic {message.get('TopicArn')!r} is not in DRIP_SNS_TOPIC_ARNS",
        )
    return message


def ses_reports(
    body: bytes, local_certificate: Path | None, now: datetime, topics: tuple[str, ...]
) -> tuple[list[Report], str | None]:
    """The reports in one SNS POST (`sns_message`), and the SubscribeURL of a
    subscription confirmation."""
    message = sns_message(body, local_certificate, now, topics, "/webhooks/ses")
    kind = message.get("Type")
    if kind == "SubscriptionConfirmation":
        return [], str(message.get("SubscribeURL", ""))
    if kind == "UnsubscribeConfirmation":
        log.warning("Amazon SNS unsubscribed /webhooks/ses from %s", message.get("TopicArn"))
        return [], None
    if kind != "Notification":
        raise Refused(Why.MALFORMED, f"unknown SNS message Type {kind!r}")
    notification = read_json(str(message.get("Message", "")).encode())
    if not isinstance(notification, dict):
        raise Refused(Why.MALFORMED, "the SES notification is not an object")
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
