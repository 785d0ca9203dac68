"""What every provider's webhook shares: the refusal (`Refused`, with `Why` in domain terms,
mapped to an HTTP status by drip.web.api.webhooks), the JSON body read, a signed timestamp
checked for age."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

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
