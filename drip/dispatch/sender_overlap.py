"""The one sender's lane on PostgreSQL, as the lessons' (drip.dispatch.send): the commit
recording copy N (its WAL flush) runs on a thread of its own while copy N+1 is built and its
envelope (MAIL FROM, RCPT TO) opened; N+1's DATA goes only once N's commit has returned with
the status of N+1's reader, read in that same transaction (drip.dispatch.hot_path). Nothing
more than an envelope is ever open beside a commit, so a crash still leaves at most one
message per SMTP session whose outcome is unknown, and each outcome is committed before the
session's next hand-off. Only without a shared pace: a slot waited for would fall between
the status read and the hand-off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self

from sqlalchemy.orm import Session

from drip.dispatch.caps import BatchCaps
from drip.dispatch.hot_path import HotPath
from drip.dispatch.outcome import OutcomeStatus
from drip.dispatch.overlap import Opened, open_envelope
from drip.dispatch.producers import Item, Producer
from drip.dispatch.record import LEASE_LOST
from drip.mail.transports import SendError, SmtpTransport, Transport

if TYPE_CHECKING:
    from drip.dispatch.sender import Run, Sender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Turn:
    """One item's turn in a batch: what the sender knows as it comes to it."""

    item: Item
    now: datetime
    caps: BatchCaps | None
    hot: HotPath | None
    check: str | None  # its reader's status, read while recording the previous item
    following: Item | None  # the next item, whose status recording this one reads


@dataclass
class Flight:
    """A message handed over whose record runs beside the next envelope: whether it was
    recorded, and the next reader's status."""

    item: Item
    future: Future[tuple[bool, str | None]]


class Relay:
    """The batch's transport, opened by its first message (as OnFirstSend in
    drip.mail.transports), and reachable once open for an envelope and its DATA apart."""

    def __init__(self, factory: Callable[[], Transport]) -> None:
        self.factory = factory
        self.opened: Transport | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.opened is not None:
            self.opened.__exit__(kind, error, tb)

    def send(self, sender: str, recipient: str, message: bytes, name: str) -> None:
        if self.opened is None:
            self.opened = self.factory().__enter__()
        self.opened.send(sender, recipient, message, name)


def overlapped(
    sender: Sender,
    session: Session,
    relay: Relay,
    producer: Producer,
    ready: list[Item],
    now: datetime,
    run: Run,
    caps: BatchCaps | None,
    hot: HotPath,
) -> None:
    """The batch in order; each copy's record beside the next one's envelope, once the
    first message has opened the SMTP session."""
    check: str | None = None
    flight: Flight | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="record") as pool:
        for index, item in enumerate(ready):
            if run.stopped:
                sender.settle(session, producer, item, now, sender.release(item, now))
                continue
            following = ready[index + 1] if index + 1 < len(ready) else None
            smtp = relay.opened if isinstance(relay.opened, SmtpTransport) else None
            opened: Opened | None = None
            if flight is not None:
                if smtp is not None and sender.capped(caps, item, now) is None:
                    opened = _open(sender, smtp, item, now)
                check = _land(sender, producer, flight, run)
                flight = None
            why = check if check is not None else hot.read(item)
            turn = Turn(item, now, caps, hot, why, following)
            if smtp is None or why or sender.capped(caps, item, now) is not None:
                if smtp is not None and opened is not None and opened.error is None:
                    smtp.reset()  # nothing was handed over
                outcome, check = sender.one(session, relay, producer, turn, run)
                run.outcomes.append(outcome)
                continue
            check = None
            if _hand_over(sender, session, smtp, producer, turn, opened, run):
                record = pool.submit(hot.record_sent, item, item.attempts + 1, now, following)
                flight = Flight(item, record)
        if flight is not None:
            _land(sender, producer, flight, run)


def _hand_over(
    sender: Sender,
    session: Session,
    smtp: SmtpTransport,
    producer: Producer,
    turn: Turn,
    opened: Opened | None,
    run: Run,
) -> bool:
    """DATA of a message whose envelope may be open already; True when handed over (the
    caller starts its record), False when it failed (recorded here)."""
    item, now = turn.item, turn.now
    opened = opened or _open(sender, smtp, item, now)
    if opened is None:  # unsendable: built again and recorded in the usual way
        outcome, _ = sender.one(session, smtp, producer, turn, run)
        run.outcomes.append(outcome)
        return False
    error = opened.error
    if error is None:
        try:
            smtp.data(opened.message)
        except SendError as failed:
            error = failed
    if error is not None:
        run.outcomes.append(sender.failed(session, producer, item, now, error, run))
        return False
    if turn.caps is not None:
        turn.caps.handed(item.subscriber_id, now)
    return True


def _open(sender: Sender, smtp: SmtpTransport, item: Item, now: datetime) -> Opened | None:
    return open_envelope(
        smtp, lambda: sender.message(item, now), sender.envelope_from(item), item.email
    )


def _land(sender: Sender, producer: Producer, flight: Flight, run: Run) -> str | None:
    """Wait for the record in flight; report its outcome; the next reader's status."""
    recorded, check = flight.future.result()
    item = flight.item
    if not recorded:
        log.warning("%s %s handed over, not recorded: %s", item.label, item.row_id, LEASE_LOST)
    run.outcomes.append(sender.outcome(producer, item, OutcomeStatus.SENT))
    return check
