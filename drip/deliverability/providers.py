"""Each provider's webhook: how it signs, and what its payload says, as `Report`s.

No Flask here: each `*_reports` function takes the raw request parts and returns the
reports, or raises `Refused` saying why. The shapes and the signing follow each provider's
documentation (Amazon SES, through SNS, is in drip.deliverability.ses):

- drip's own format: a bearer token (DRIP_WEBHOOK_TOKEN);
- Postmark: HTTP basic auth, RecordType Bounce / SpamComplaint;
- Mailgun: HMAC-SHA256 of timestamp + token with the webhook signing key;
- SendGrid: ECDSA P-256 / SHA-256 over timestamp + raw body, key given as base64 DER.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session

from drip.deliverability.bounces import Kind, Report, event_key
from drip.deliverability.webhook_input import (
    Refused,
    Why,
    check_basic_auth,
    check_unix_time,
    first_use,
    mailgun_signed,
    read_json,
)

log = logging.getLogger(__name__)


# -- drip's own format ------------------------------------------------------------------------


def drip_reports(body: bytes, authorization: str, token: str) -> list[Report]:
    """`{"email", "type": "hard"|"soft"|"complaint", "message_id"?, "reason"?, "id"?}`, or a
    list of them, with `Authorization: Bearer <DRIP_WEBHOOK_TOKEN>`."""
    if not token:
        raise Refused(
            Why.NOT_ACCEPTING, "DRIP_WEBHOOK_TOKEN is not set: /webhooks/bounce accepts nothing"
        )
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise Refused(
            Why.UNAUTHENTICATED,
            "missing or wrong bearer token (Authorization: Bearer <DRIP_WEBHOOK_TOKEN>)",
        )
    payload = read_json(body)
    items = payload if isinstance(payload, list) else [payload]
    reports = []
    for index, item in enumerate(items):
        where = f"event {index}" if isinstance(payload, list) else "the event"
        if not isinstance(item, dict):
            raise Refused(Why.MALFORMED, f"{where} is not an object")
        email, kind = item.get("email"), item.get("type")
        if not isinstance(email, str) or "@" not in email:
            raise Refused(Why.MALFORMED, f'{where}: "email" must be an address, got {email!r}')
        if kind not in ("hard", "soft", "complaint"):
            raise Refused(
                Why.MALFORMED, f'{where}: "type" must be hard, soft or complaint, got {kind!r}'
            )
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


# -- Postmark ---------------------------------------------------------------------------------

POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Blocked"}
POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError"}


def postmark_reports(body: bytes, authorization: str, credentials: str) -> list[Report]:
    if not credentials:
        raise Refused(
            Why.NOT_ACCEPTING, "DRIP_POSTMARK_AUTH is not set: /webhooks/postmark accepts nothing"
        )
    check_basic_auth(authorization, credentials, "DRIP_POSTMARK_AUTH")
    payload = read_json(body)
    if not isinstance(payload, dict):
        raise Refused(Why.MALFORMED, "the Postmark record is not an object")
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
        raise Refused(
            Why.NOT_ACCEPTING,
            "DRIP_MAILGUN_SIGNING_KEY is not set: /webhooks/mailgun accepts nothing",
        )
    payload = read_json(body)
    signature = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signature, dict):
        raise Refused(Why.MALFORMED, 'no "signature" object in the Mailgun payload')
    token = mailgun_signed(
        str(signature.get("timestamp", "")),
        str(signature.get("token", "")),
        str(signature.get("signature", "")),
        signing_key,
        now,
    )
    first_use(session, "mailgun", token, now)
    return _mailgun_report(payload.get("event-data") or {}, token)


def _mailgun_report(data: Mapping[str, Any], token: str) -> list[Report]:
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
        raise Refused(
            Why.MISCONFIGURED, "DRIP_SENDGRID_PUBLIC_KEY is not a base64 DER public key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Refused(Why.MISCONFIGURED, "DRIP_SENDGRID_PUBLIC_KEY is not an ECDSA key")
    return key


def sendgrid_reports(
    body: bytes,
    headers: Mapping[str, str],
    public_key: str,
    now: datetime,
) -> list[Report]:
    if not public_key:
        raise Refused(
            Why.NOT_ACCEPTING,
            "DRIP_SENDGRID_PUBLIC_KEY is not set: /webhooks/sendgrid accepts nothing",
        )
    signature = headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
    timestamp = headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
    if not signature or not timestamp:
        raise Refused(
            Why.UNAUTHENTICATED,
            "the SendGrid signature headers are missing (turn on the signed event webhook)",
        )
    try:
        _sendgrid_key(public_key).verify(
            base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused(
            Why.UNAUTHENTICATED, "the SendGrid signature does not match (DRIP_SENDGRID_PUBLIC_KEY)"
        ) from None
    check_unix_time(timestamp, now, "SendGrid")
    events = read_json(body)
    if not isinstance(events, list):
        raise Refused(Why.MALFORMED, "the SendGrid body is not a list of events")
    return [r for r in (_sendgrid_report(e) for e in events if isinstance(e, dict)) if r]


def _sendgrid_report(event: Mapping[str, Any]) -> Report | None:
    """The report in one SendGrid event, or None for an event that is not one."""
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
        return None
    diagnostic = " ".join(p for p in (str(event.get("status") or ""), reason) if p) or name
    ident = event.get("sg_event_id") or event_key("sendgrid", json.dumps(event, sort_keys=True))
    return Report(
        kind,
        email,
        "sendgrid",
        f"sendgrid:{ident}",
        message_id=str(event.get("smtp-id") or "") or None,
        diagnostic=f"{name}: {diagnostic}",
    )
