"""How the one hand-off lane (drip.dispatch.lane) reads and records the one sender's items:
the status read and the sent record on the hot path (drip.dispatch.hot_path); on
PostgreSQL without a shared pace, the record of copy N (the sent mark, the next reader's
status in the same statement) commits beside copy N+1's envelope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from drip.dispatch.caps import BatchCaps
from drip.dispatch.hot_path import HotPath
from drip.dispatch.lane import Landing
from drip.dispatch.producers import Item, Producer
from drip.mail.transports import OnFirstSend, SendError, SmtpTransport

if TYPE_CHECKING:
    from drip.dispatch.sender import Run, Sender


@dataclass(frozen=True)
class Turn:
    """One item's turn in a batch: what the sender knows as it comes to it."""

    item: Item
    now: datetime
    caps: BatchCaps | None
    hot: HotPath
    check: str  # its reader's status: "" (send) or why not
    following: Item | None  # the next item, whose status recording this one reads


@dataclass
class SenderLedger:
    """One producer's batch on the lane: statuses are "" (send) or why not."""

    sender: Sender
    session: Session
    relay: OnFirstSend
    producer: Producer
    now: datetime
    run: Run
    caps: BatchCaps | None
    hot: HotPath

    def smtp(self) -> SmtpTransport | None:
        opened = self.relay.opened
        return opened if isinstance(opened, SmtpTransport) else None

    def stopped(self) -> bool:
        return self.run.stopped

    def release(self, item: Item) -> None:
        self.sender.settle(
            self.session, self.producer, item, self.now, self.sender.release(item, self.now)
        )

    def read(self, item: Item) -> str:
        return self.hot.read(item)

    def goes(self, item: Item, check: str) -> bool:
        return not check and self.may_open(item)

    def may_open(self, item: Item) -> bool:
        return self.sender.capped(self.caps, item, self.now) is None

    def usual(self, item: Item, check: str, following: Item | None) -> str | None:
        turn = Turn(item, self.now, self.caps, self.hot, check, following)
        outcome, after = self.sender.one(self.session, self.relay, self.producer, turn, self.run)
        self.run.outcomes.append(outcome)
        return after

    def build(self, item: Item) -> bytes:
        return self.sender.message(item, self.now)

    def envelope(self, item: Item) -> tuple[str, str]:
        return self.sender.envelope_from(item), item.email

    def failed(self, item: Item, error: SendError) -> None:
        outcome = self.sender.failed(self.session, self.producer, item, self.now, error, self.run)
        self.run.outcomes.append(outcome)

    def handed(self, item: Item) -> None:
        if self.caps is not None:
            self.caps.handed(item.subscriber_id, self.now)

    def record(self, item: Item, following: Item | None) -> Landing[str]:
        return self.hot.record_later(item, item.attempts + 1, self.now, following)

    def landed(self, item: Item, recorded: bool) -> None:
        self.run.outcomes.append(self.sender.sent(self.producer, item, recorded))
