"""What a pass tells its caller: one `Outcome` per claimed reader, and the `PassReport`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from drip.broadcasts import Sent as BroadcastsSent
from drip.chaining import Chained
from drip.fresh_links import Sent
from drip.intake import Intake


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


SUMMARY_ORDER = (
    OutcomeStatus.SENT,
    OutcomeStatus.WOULD_SEND,
    OutcomeStatus.RETRYING,
    OutcomeStatus.FAILED,
    OutcomeStatus.SUPPRESSED,
    OutcomeStatus.COMPLETED,
    OutcomeStatus.HELD,
)


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

    def __str__(self) -> str:
        relay = "relay: " if self.relay_down and not self.throttled else ""
        detail = f" ({relay}{self.detail})" if self.detail else ""
        return f"{self.status:<10} {self.email} {self.sequence}/{self.lesson}{detail}"


@dataclass
class PassReport:
    now: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    intake: Intake = field(default_factory=Intake)
    waiting: int = 0  # sign-ups a dry run found waiting to be taken in
    fresh_links: Sent = field(default_factory=Sent)  # download links readers asked for
    chained: Chained = field(default_factory=Chained)  # on_complete carried out
    broadcasts: BroadcastsSent = field(default_factory=BroadcastsSent)

    def count(self, status: OutcomeStatus | str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in SUMMARY_ORDER if self.count(s)]
        if self.intake.taken or self.intake.held or self.intake.interrupted:
            parts.insert(0, self.intake.summary())
        if self.waiting:
            parts.insert(0, f"{self.waiting} sign-ups waiting to be taken in")
        if self.chained.enrolled or self.chained.offered:
            parts.append(
                f"{self.chained.enrolled} chained into their next course, "
                f"{self.chained.offered} offered it"
            )
        if self.broadcasts.sent or self.broadcasts.failed:
            parts.append(
                f"{self.broadcasts.sent} broadcast messages sent"
                + (f", {self.broadcasts.failed} not" if self.broadcasts.failed else "")
            )
        if self.fresh_links.sent or self.fresh_links.failed:
            parts.append(
                f"{self.fresh_links.sent} fresh links sent"
                + (f", {self.fresh_links.failed} not" if self.fresh_links.failed else "")
            )
        return f"dispatch as of {self.now.isoformat()}: " + (", ".join(parts) or "nothing due")
