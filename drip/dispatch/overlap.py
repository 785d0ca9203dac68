"""What lets a lane of the lessons' sender (drip.dispatch.send) record one message while it
opens the next one's envelope: the commit of message N, with its WAL flush, runs on a thread
of its own beside MAIL FROM and RCPT TO of message N+1, and N+1's DATA waits for that commit
(and for its reader's status, read in the same transaction). Only an envelope is ever open
beside a commit, so a crash still leaves at most one message per SMTP session whose outcome
is unknown."""

from __future__ import annotations

import enum
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from drip.dispatch.write_ahead import Ready
from drip.mail.handoff import Unsendable
from drip.mail.transports import SendError, SmtpTransport


class Check(enum.Enum):
    """What the read right before a hand-off found."""

    SEND = "send"
    LEFT = "left"  # unsubscribed, suppressed or gone: cancel
    TAKEN = "taken"  # another worker claimed the reader after this one's lease ran out


@dataclass
class Opened:
    """A message built, with its envelope opened (or the relay's refusal of it)."""

    message: bytes
    error: SendError | None


@dataclass
class Flight:
    """A lesson handed over whose recording runs beside the next message's envelope: when
    done, whether it was recorded and the next reader's status."""

    item: Ready
    future: Future[tuple[bool, Check | None]] | None = None


def open_envelope(
    relay: SmtpTransport, build: Callable[[], bytes], sender: str, recipient: str
) -> Opened | None:
    """Build the message and open its envelope; None when it cannot be built (its turn
    builds it again and records why)."""
    try:
        message = build()
    except Unsendable:
        return None
    try:
        relay.envelope(sender, recipient, len(message))
    except SendError as error:
        return Opened(message, error)
    return Opened(message, None)
