"""The one hand-off lane: how every kind of message goes from its reader's status to SMTP
and back to its row, one SMTP session at a time. The lessons' batches (drip.dispatch.send)
and the one sender's producers (drip.dispatch.sender) run these same loops; each kind says
through a `Ledger` how its rows are read and recorded.

- `in_turn`: for each message, a slot of the shared pace waited for, then the reader's
  status read (unless recording the previous message just read it, with no wait since),
  then the hand-off and its outcome recorded before the next.
- `overlapped` (PostgreSQL, no shared pace): the commit recording message N, with its WAL
  flush, runs on a thread of its own beside building message N+1 and (unless the relay
  offers PIPELINING, where it goes with DATA) its MAIL FROM and RCPT TO, and N+1's DATA
  waits for that commit (and for its reader's status, read in the same transaction). At
  most an envelope is ever open beside a commit, so a crash still leaves at most one
  message per SMTP session whose outcome is unknown.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from drip.mail.handoff import Unsendable
from drip.mail.pace import Pace
from drip.mail.transports import SendError, SmtpTransport

I = TypeVar("I")  # noqa: E741  an item of the batch
C = TypeVar("C")  # what the status read found
I_in = TypeVar("I_in", contravariant=True)
T = TypeVar("T")


class Check(enum.Enum):
    """What the read right before a lesson's hand-off found."""

    SEND = "send"
    LEFT = "left"  # unsubscribed, suppressed or gone: cancel
    TAKEN = "taken"  # another worker claimed the reader after this one's lease ran out


@dataclass
class Opened:
    """A message built, with its envelope opened (or the relay's refusal of it); or built
    alone, where the relay offers PIPELINING (`ahead` False): there its envelope goes with
    DATA in one write, so opening it ahead would save no wait and cost one."""

    message: bytes
    error: SendError | None
    ahead: bool = True


@dataclass
class Flight(Generic[I, C]):
    """A message handed over whose record runs beside the next message's envelope: when
    done, whether it was recorded and the next reader's status."""

    item: I
    future: Future[tuple[bool, C | None]]


class Ledger(Protocol[I_in, C]):
    """How one kind's rows are read and recorded around the lane's hand-offs."""

    def smtp(self) -> SmtpTransport | None:
        """The open SMTP session, if one is open yet."""
        ...

    def stopped(self) -> bool:
        """The relay is down or resting: the rest of the batch is released."""
        ...

    def release(self, item: I_in) -> None: ...

    def read(self, item: I_in) -> C:
        """The reader's status, read now, on its own."""
        ...

    def goes(self, item: I_in, check: C) -> bool:
        """The status lets it go, and nothing holds it back (a cap)."""
        ...

    def may_open(self, item: I_in) -> bool:
        """Whether its envelope may be opened before its status is known."""
        ...

    def usual(self, item: I_in, check: C, following: I_in | None) -> C | None:
        """Its turn with its status read: handed over (or not) and recorded before the
        next; the following reader's status when recording read it."""
        ...

    def build(self, item: I_in) -> bytes:
        """The message; raises Unsendable."""
        ...

    def envelope(self, item: I_in) -> tuple[str, str]:
        """(the return path, the recipient)."""
        ...

    def failed(self, item: I_in, error: SendError) -> None: ...

    def handed(self, item: I_in) -> None:
        """Handed over: counted where the kind counts (a reader's caps)."""
        ...

    def record(self, item: I_in, following: I_in | None) -> tuple[bool, C | None]:
        """Recorded as sent (on the lane's thread): whether it was, and the following
        reader's status read in the same transaction."""
        ...

    def landed(self, item: I_in, recorded: bool) -> None: ...


def open_envelope(
    relay: SmtpTransport, build: Callable[[], bytes], sender: str, recipient: str
) -> Opened | None:
    """Build the message and open its envelope; None when it cannot be built (its turn
    builds it again and records why)."""
    try:
        message = build()
    except Unsendable:
        return None
    if relay.pipelines:
        return Opened(message, None, ahead=False)
    try:
        relay.envelope(sender, recipient, len(message))
    except SendError as error:
        return Opened(message, error)
    return Opened(message, None)


class CommitTimer:
    """How long recording a hand-off takes here, lately: the overlapped lane is worth its
    thread (and the lock it shares with the sending thread) only when a commit is slow, a
    disk's flush or a database across a network. Measured on a quiet two-core machine with
    PostgreSQL beside it, a 0.7 ms commit made lessons 10% slower overlapped than in turn;
    under load, 2-5 ms commits made them up to twice as fast (bench/PROFILE.md)."""

    WEIGHT = 0.1  # of the newest record in the running mean

    def __init__(self, threshold_ms: float, clock: Callable[[], float] = time.perf_counter) -> None:
        self.threshold, self.clock = threshold_ms / 1000, clock
        self.mean: float | None = None  # seconds; None until a record is timed

    def worth_a_thread(self) -> bool:
        """Overlap the next batch's records? Not before one was timed, unless always."""
        if self.threshold <= 0:
            return True
        return self.mean is not None and self.mean >= self.threshold

    def timed(self, record: Callable[[], T]) -> T:
        started = self.clock()
        try:
            return record()
        finally:
            took = self.clock() - started
            mean = self.mean
            self.mean = took if mean is None else mean + self.WEIGHT * (took - mean)


def in_turn(ledger: Ledger[I, C], items: Sequence[I], pace: Pace | None) -> None:
    """The batch in order, each outcome recorded before the next hand-off."""
    check: C | None = None  # the next reader's, when recording already read it
    for index, item in enumerate(items):
        if ledger.stopped():
            ledger.release(item)
            continue
        if pace is not None and pace.wait():
            check = None  # it waited for its slot: read the status again, now
        following = items[index + 1] if index + 1 < len(items) else None
        if check is None:
            check = ledger.read(item)
        check = ledger.usual(item, check, following)


def overlapped(ledger: Ledger[I, C], items: Sequence[I]) -> None:
    """The batch in order, each record beside the next message's envelope."""
    check: C | None = None
    flight: Flight[I, C] | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="record") as pool:
        for index, item in enumerate(items):
            if ledger.stopped():
                ledger.release(item)
                continue
            following = items[index + 1] if index + 1 < len(items) else None
            smtp = ledger.smtp()
            opened: Opened | None = None
            if flight is not None:
                if smtp is not None and ledger.may_open(item):
                    opened = _open(ledger, smtp, item)
                check, flight = _land(ledger, flight), None
            if check is None:
                check = ledger.read(item)
            if smtp is None or not ledger.goes(item, check):
                if smtp is not None and opened and opened.ahead and opened.error is None:
                    smtp.reset()  # nothing was handed over
                check = ledger.usual(item, check, following)
                continue
            if _hand_over(ledger, smtp, item, check, opened):
                flight = Flight(item, pool.submit(ledger.record, item, following))
            check = None
        if flight is not None:
            _land(ledger, flight)


def _hand_over(
    ledger: Ledger[I, C], smtp: SmtpTransport, item: I, check: C, opened: Opened | None
) -> bool:
    """DATA of a message whose envelope may be open already; True when handed over (the
    caller starts its record), False when it failed (recorded here)."""
    opened = opened or _open(ledger, smtp, item)
    if opened is None:  # unsendable: built again and recorded the usual way
        ledger.usual(item, check, None)
        return False
    error = opened.error
    if error is None:
        try:
            if opened.ahead:
                smtp.data(opened.message)
            else:  # SMTP has no use for the outbox's file name
                smtp.send(*ledger.envelope(item), opened.message, name="")
        except SendError as failed:
            error = failed
    if error is not None:
        ledger.failed(item, error)
        return False
    ledger.handed(item)
    return True


def _open(ledger: Ledger[I, C], smtp: SmtpTransport, item: I) -> Opened | None:
    return open_envelope(smtp, lambda: ledger.build(item), *ledger.envelope(item))


def _land(ledger: Ledger[I, C], flight: Flight[I, C]) -> C | None:
    """Wait for the record in flight; its outcome, and the next reader's status."""
    recorded, check = flight.future.result()
    ledger.landed(flight.item, recorded)
    return check
