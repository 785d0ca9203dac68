"""What became of one message a pass meant to send, of whatever kind: shared by the lessons'
sender (drip.dispatch) and the producers beside it (fresh links, offers, broadcast copies),
so that the dry run, the report and the pass's log line name every kind alike."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.StrEnum):
    """The kinds of message drip sends to a reader."""

    CONFIRMATION = "confirmation"
    LESSON = "lesson"
    FRESH_LINK = "fresh-link"
    OFFER = "offer"
    BROADCAST = "broadcast"
    STILL_WANTED = "still-wanted"  # after a reader's long pause (drip.dispatch.still_wanted)
    REPERMISSION = "repermission"  # "Still want these?" (drip.dispatch.repermission)


class OutcomeStatus(enum.StrEnum):
    """What became of one claimed reader in a pass (printed as its value)."""

    SENT = "sent"
    WOULD_SEND = "would-send"  # the dry run's word for a message a real pass hands over
    RETRYING = "retrying"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    COMPLETED = "completed"
    HELD = "held"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Outcome:
    enrollment_id: int
    email: str
    sequence: str
    lesson: str
    status: OutcomeStatus
    detail: str = ""
    relay_down: bool = False  # the relay could not be reached: the rest of the batch waits
    throttled: bool = False  # the relay asked drip to slow down: the worker rests a while
    kind: Kind = Kind.LESSON

    def __str__(self) -> str:
        relay = "relay: " if self.relay_down and not self.throttled else ""
        detail = f" ({relay}{self.detail})" if self.detail else ""
        return f"{self.status:<10} {self.email} {self.sequence}/{self.lesson}{detail}"
