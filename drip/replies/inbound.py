"""The providers' inbound webhooks: each reads one received message, signed its provider's
way, into an `Incoming` (and the raw message when the provider gives it). No Flask here:
each function takes the request's parts and raises `Refused` (drip.deliverability.providers)
with the status to answer.

- Postmark: its inbound webhook's JSON (`FromFull`, `ToFull`, `Headers`, `TextBody`), with
  the same HTTP basic auth as its bounce webhook (DRIP_POSTMARK_AUTH);
- Mailgun: a route's `forward()` to a URL, form fields signed with the webhook signing key
  (HMAC-SHA256 of timestamp + token, each token once), `body-mime` when the URL ends in
  `mime`, else the parsed fields;
- Amazon SES: a receipt rule's SNS action, the SNS message signed as for bounces and from a
  topic in DRIP_SNS_TOPIC_ARNS, the message itself in `content` (UTF-8 or Base64).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from drip.deliverability.ses import sns_message
from drip.deliverability.webhook_input import (
    Refused,
    Why,
    check_basic_auth,
    first_use,
    mailgun_signed,
    read_json,
)
from drip.replies.incoming import Incoming, addresses, from_mime, message_key

log = logging.getLogger(__name__)

Read = tuple[Incoming | None, bytes | None]  # nothing to take in (an SNS confirmation): None


def postmark_inbound(body: bytes, authorization: str, credentials: str) -> Read:
    if not credentials:
        raise Refused(
            Why.NOT_ACCEPTING,
            "DRIP_POSTMARK_AUTH is not set: /webhooks/postmark/inbound accepts nothing",
        )
    check_basic_auth(authorization, credentials, "DRIP_POSTMARK_AUTH")
    data = read_json(body)
    if not isinstance(data, dict):
        raise Refused(Why.MALFORMED, "the Postmark inbound message is not an object")
    headers = {
        str(h.get("Name", "")).lower(): str(h.get("Value", ""))
        for h in data.get("Headers") or []
        if isinstance(h, dict)
    }
    sender = data.get("FromFull") or {}
    found = [str(r.get("Email", "")) for k in ("ToFull", "CcFull") for r in data.get(k) or []]
    recipients = addresses([str(data.get("OriginalRecipient") or ""), *found])
    message_id = headers.get("message-id") or str(data.get("MessageID") or "")
    incoming = Incoming(
        source="postmark",
        key=message_key("postmark", message_id, json.dumps(data, sort_keys=True)),
        sender=str(sender.get("Email") if isinstance(sender, dict) else "")
        or str(data.get("From", "")),
        recipients=recipients,
        subject=" ".join(str(data.get("Subject") or "").split()),
        body=str(data.get("TextBody") or data.get("StrippedTextReply") or "").strip(),
        headers=headers,
    )
    return incoming, None


def mailgun_inbound(
    session: Session, form: Mapping[str, str], signing_key: str, now: datetime
) -> Read:
    """Checks the signature, the timestamp and that the token is new (stored in the
    caller's transaction)."""
    if not signing_key:
        raise Refused(
            Why.NOT_ACCEPTING,
            "DRIP_MAILGUN_SIGNING_KEY is not set: /webhooks/mailgun/inbound accepts nothing",
        )
    token = mailgun_signed(
        form.get("timestamp", ""),
        form.get("token", ""),
        form.get("signature", ""),
        signing_key,
        now,
    )
    first_use(session, "mailgun-in", token, now)
    envelope = [form.get("recipient", "")]
    if form.get("body-mime"):
        raw = form["body-mime"].encode()
        return from_mime(raw, "mailgun", envelope), raw
    try:
        pairs = json.loads(form.get("message-headers") or "[]")
    except ValueError:
        pairs = []
    headers = {str(p[0]).lower(): str(p[1]) for p in pairs if isinstance(p, list) and len(p) == 2}
    incoming = Incoming(
        source="mailgun",
        key=message_key("mailgun", headers.get("message-id", ""), token),
        sender=(addresses([form.get("from", "")]) or (form.get("sender", ""),))[0],
        recipients=addresses([*envelope, headers.get("to", "")]),
        subject=" ".join(form.get("subject", "").split()),
        body=form.get("body-plain", "").strip(),
        headers=headers,
    )
    return incoming, None


def ses_inbound(
    body: bytes, local_certificate: Path | None, now: datetime, topics: tuple[str, ...]
) -> Read:
    message = sns_message(body, local_certificate, now, topics, "/webhooks/ses/inbound")
    if message.get("Type") == "SubscriptionConfirmation":
        log.warning(
            "Amazon SNS asks to confirm the subscription of /webhooks/ses/inbound: open %s once",
            message.get("SubscribeURL"),
        )
        return None, None
    if message.get("Type") != "Notification":
        return None, None
    notification = read_json(str(message.get("Message", "")).encode())
    if not isinstance(notification, dict) or notification.get("notificationType") != "Received":
        return None, None
    receipt = notification.get("receipt") or {}
    content = str(notification.get("content") or "")
    if not content:
        raise Refused(
            Why.MALFORMED, "the SES notification holds no message (use a receipt rule's SNS action)"
        )
    encoding = str((receipt.get("action") or {}).get("encoding") or "UTF8").upper()
    try:
        raw = base64.b64decode(content) if encoding == "BASE64" else content.encode()
    except binascii.Error:
        raise Refused(Why.MALFORMED, "the SES message content is not base64") from None
    return from_mime(raw, "ses", [str(r) for r in receipt.get("recipients") or []]), raw
