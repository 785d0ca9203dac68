"""What every provider's webhook shares: the refusal (`Refused`, with `Why` in domain terms,
mapped to an HTTP status by drip.web.api.webhooks), the JSON body read, a signed timestamp
checked for age, Postmark's basic auth and Mailgun's signed token, used once: for the
bounce and complaint webhooks (drip.deliverability.providers) and the inbound replies'
(drip.replies.inbound) alike."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from drip.store.models import WebhookToken

MAX_AGE = timedelta(minutes=5)  # Mailgun and SendGrid: a signed timestamp older is a replay


class Why(Enum):
    """Why a webhook request is refused; the web layer answers each with its HTTP status."""

    MALFORMED = "malformed"  # the body or a field cannot be read
    UNAUTHENTICATED = "unauthenticated"  # no signature, a wrong one, or a stale timestamp
    NOT_ACCEPTING = "not accepting"  # drip is not set up to take this provider's events
    REPLAYED = "replayed"  # a signed request seen before
    MISCONFIGURED = "misconfigured"  # drip's own setting for this provider is wrong


class Refused(Exception):
    """The request is not accepted: `why` is the kind of refusal, the message says what."""

    def __init__(self, why: Why, message: str) -> None:
        super().__init__(message)
        self.why = why


def read_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise Refused(Why.MALFORMED, f"the body is not JSON: {error}") from None
    except RecursionError:  # [[[[... a hundred thousand deep
        raise Refused(Why.MALFORMED, "the body is JSON nested too deeply to read") from None


def check_fresh(stamp: datetime, now: datetime, limit: timedelta, what: str) -> None:
    if abs(now - stamp) > limit:
        raise Refused(
            Why.UNAUTHENTICATED,
            f"{what} timestamp {stamp.isoformat()} is more than "
            f"{int(limit.total_seconds() // 60)} minutes from now: refused as "
            "a replay",
        )


def check_unix_time(timestamp: str, now: datetime, what: str) -> None:
    """A signed Unix timestamp (Mailgun's, SendGrid's): a number, and within MAX_AGE of now."""
    try:
        stamp = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        raise Refused(
            Why.MALFORMED, f"the {what} timestamp {timestamp!r} is not a number"
        ) from None
    check_fresh(stamp, now, MAX_AGE, what)


def check_basic_auth(authorization: str, credentials: str, setting: str) -> None:
    """HTTP basic auth carrying exactly `credentials` (Postmark's webhooks sign so)."""
    scheme, _, encoded = authorization.partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        given = b""
    if scheme.lower() != "basic" or not hmac.compare_digest(given, credentials.encode()):
        raise Refused(Why.UNAUTHENTICATED, f"missing or wrong HTTP basic auth ({setting})")


def mailgun_signed(
    timestamp: str, token: str, signature: str, signing_key: str, now: datetime
) -> str:
    """The token of a Mailgun signature that holds and is fresh."""
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest().encode(), signature.encode()):
        raise Refused(
            Why.UNAUTHENTICATED, "the Mailgun signature does not match (DRIP_MAILGUN_SIGNING_KEY)"
        )
    check_unix_time(timestamp, now, "Mailgun")
    return token


def first_use(session: Session, provider: str, token: str, now: datetime) -> None:
    """A signed token seen within twice the freshness window is a replay; older ones are
    forgotten. The token is stored in the caller's transaction, with what it brought."""
    session.execute(delete(WebhookToken).where(WebhookToken.seen_at < now - 2 * MAX_AGE))
    seen = session.scalar(
        select(WebhookToken.token).where(
            WebhookToken.provider == provider, WebhookToken.token == token[:255]
        )
    )
    if seen is not None:
        raise Refused(Why.REPLAYED, "this Mailgun token was already used: refused as a replay")
    session.add(WebhookToken(provider=provider, token=token[:255], seen_at=now))
