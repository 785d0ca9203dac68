"""What a pass tells its caller: one `Outcome` per claimed reader, and the `PassReport`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from drip.audience.intake import Intake
from drip.dispatch.chaining import Chained
from drip.dispatch.outcome import Kind, Outcome, OutcomeStatus

__all__ = ["Kind", "Outcome", "OutcomeStatus", "PassReport"]


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
class Tally:
    """How one kind of message fared in a pass."""

    sent: int
    failed: int
    skipped: int


@dataclass
class PassReport:
    now: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    intake: Intake = field(default_factory=Intake)
    waiting: int = 0  # sign-ups a dry run found waiting to be taken in
    chained: Chained = field(default_factory=Chained)  # on_complete carried out

    def tally(self, kind: Kind) -> Tally:
        """Sent, failed (for good or for now) and skipped messages of one kind."""
        statuses = [o.status for o in self.outcomes if o.kind == kind]
        failed = (OutcomeStatus.FAILED, OutcomeStatus.RETRYING, OutcomeStatus.SUPPRESSED)
        return Tally(
            statuses.count(OutcomeStatus.SENT),
            sum(status in failed for status in statuses),
            statuses.count(OutcomeStatus.SKIPPED),
        )

    @property
    def fresh_links(self) -> Tally:
        return self.tally(Kind.FRESH_LINK)

    @property
    def broadcasts(self) -> Tally:
        return self.tally(Kind.BROADCAST)

    def count(self, status: OutcomeStatus | str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    def kinds(self, status: OutcomeStatus | str) -> Counter[Kind]:
        """How many of each kind of message ended as `status`."""
        return Counter(o.kind for o in self.outcomes if o.status == status)

    def summary(self) -> str:
        """One line for every kind a pass sends (or, dry, would send)."""
        parts = [self._part(s) for s in SUMMARY_ORDER if self.count(s)]
        if self.intake.taken or self.intake.held or self.intake.interrupted:
            parts.insert(0, self.intake.summary())
        if self.waiting:
            parts.insert(0, f"{self.waiting} sign-ups waiting to be taken in")
        if self.chained.enrolled:
            parts.append(f"{self.chained.enrolled} chained into their next course")
        return f"dispatch as of {self.now.isoformat()}: " + (", ".join(parts) or "nothing due")

    def _part(self, status: OutcomeStatus) -> str:
        """ "5 sent", or with more than one kind "5 sent (3 lesson, 2 broadcast)"."""
        kinds = self.kinds(status)
        part = f"{self.count(status)} {status}"
        if len(kinds) > 1:
            part += " (" + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) + ")"
        return part
