"""The one hand-off lane: how every kind of message goes from its reader's status to SMTP
and back to its row, one SMTP session at a time. The lessons' batches (drip.dispatch.send)
and the one sender's producers (drip.dispatch.sender) run these same loops; each kind says
through a `Ledger` how its rows are read and recorded.

- `in_turn`: for each message, a slot of the shared pace waited for, then the reader's
  status read (unless recording the previous message just read it, with no wait since),
  then the hand-off and its outcome recorded before the next.
- `overlapped` (no shared pace): on PostgreSQL the statement recording message N goes to
  the database without waiting for its answer (drip.store.deferred); while the server runs
  it and flushes its WAL, the lane streams message N+1 up to its final dot (its envelope
  opened with DATA, where the relay offers PIPELINING) and builds N+2, then reads that
  answer, which brings N+1's reader's status too, and only then sends N+1's final dot, or
  drops it. N+2's envelope goes behind that dot, in the same write (RFC 2920's example,
  3.1): one wait for the relay a message. On SQLite the record runs in turn, and the
  envelopes go behind the dots all the same. A message with DATA open and no final dot
  is nothing handed over (RFC 5321, 3.8), so a crash still leaves at most one message per
  SMTP session whose outcome is unknown.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from drip.mail.handoff import Unsendable
from drip.mail.pace import Pace
from drip.mail.transports import SendError, SmtpTransport

I = TypeVar("I")  # noqa: E741  an item of the batch
C = TypeVar("C")  # what the status read found
I_in = TypeVar("I_in", contravariant=True)


class Check(enum.Enum):
    """What the read right before a lesson's hand-off found."""

    SEND = "send"
    LEFT = "left"  # unsubscribed, suppressed or gone: cancel
    TAKEN = "taken"  # another worker claimed the reader after this one's lease ran out


@dataclass
class Opened:
    """A message built, with its envelope opened (when `data`: DATA too, and the message
    streamed up to its final dot), or the relay's refusal of it."""

    message: bytes
    error: SendError | None
    data: bool = False


Landing = Callable[[], tuple[bool, C | None]]


@dataclass
class Flight(Generic[I, C]):
    """A message handed over whose record the database is running: `landing` waits for it,
    and gives whether it was recorded and the next reader's status."""

    item: I
    landing: Landing[C]


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

    def record(self, item: I_in, following: I_in | None) -> Landing[C]:
        """Start recording it as sent; the call returned waits for the outcome: whether it
        was recorded, and the following reader's status read in the same transaction.
        Until then the ledger's connection is busy."""
        ...

    def landed(self, item: I_in, recorded: bool) -> None: ...


def by_reader(items: Sequence[I], lanes: int, reader: Callable[[I], int]) -> list[list[I]]:
    """`items` in at most `lanes` shares (one per SMTP session), in order, each reader's in
    one share: a reader's messages of one batch go out one after the other, in the order
    planned, never two at once over two sessions."""
    shares: list[list[I]] = [[] for _ in range(max(1, min(lanes, len(items))))]
    lane_of: dict[int, int] = {}  # readers dealt round the lanes as they come
    for item in items:
        shares[lane_of.setdefault(reader(item), len(lane_of) % len(shares))].append(item)
    return [share for share in shares if share] or [[]]


def lanes_for(items: Sequence[I], lanes: int, reader: Callable[[I], int]) -> int:
    """How many shares `by_reader` makes of `items` (none of no items): the SMTP sessions
    the batch will use, to be opened while it is prepared (drip.mail.sessions)."""
    return min(lanes, len({reader(item) for item in items}))


def open_envelope(
    relay: SmtpTransport, build: Callable[[], bytes], sender: str, recipient: str
) -> Opened | None:
    """Build the message and open its envelope; where the relay pipelines, through DATA and
    the message up to its final dot. None when it cannot be built (its turn builds it
    again and records why)."""
    try:
        message = build()
    except Unsendable:
        return None
    try:
        relay.connect()
        data = relay.pipelines
        relay.envelope(sender, recipient, len(message), data=data)
        if data:
            relay.stream(message)
    except SendError as error:
        return Opened(message, error)
    return Opened(message, None, data)


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
    """The batch in order, each record run by the database beside the next envelope."""
    check: C | None = None
    flight: Flight[I, C] | None = None
    ahead: Opened | None = None  # the item's envelope, written behind the last final dot
    try:
        for index, item in enumerate(items):
            smtp = ledger.smtp()
            opened, ahead = ahead, None
            if ledger.stopped():
                _undo(smtp, opened)
                ledger.release(item)
                continue
            following = items[index + 1] if index + 1 < len(items) else None
            upcoming: bytes | None = None
            if flight is not None:
                if opened is None and smtp is not None and ledger.may_open(item):
                    opened = _open(ledger, smtp, item)
                upcoming = _build_ahead(ledger, opened, following)
                landing, flight = flight, None
                try:
                    check = _land(ledger, landing)
                except BaseException:
                    _undo(smtp, opened)
                    raise
            if check is None:
                check = ledger.read(item)
            if smtp is None or not ledger.goes(item, check):
                _undo(smtp, opened)
                check = ledger.usual(item, check, following)
                continue
            if opened is None:  # no record was in flight to open it beside
                opened = _open(ledger, smtp, item)
                upcoming = _build_ahead(ledger, opened, following)
            flight, ahead = _hand_over(ledger, smtp, item, check, opened, following, upcoming)
            check = None
    finally:
        if flight is not None:  # the last record, or one in flight when something failed
            _land(ledger, flight)
        _undo(ledger.smtp(), ahead)


def _undo(smtp: SmtpTransport | None, opened: Opened | None) -> None:
    """Drop a message opened ahead that is not to go: its envelope reset, or with its DATA
    open, the session dropped before the final dot. Nothing was handed over."""
    if smtp is None or opened is None or opened.error is not None:
        return
    if opened.data:
        smtp.abandon()
    else:
        smtp.reset()


def _build_ahead(ledger: Ledger[I, C], opened: Opened | None, following: I | None) -> bytes | None:
    """The following message, built while the database records the last one, so that its
    envelope can go behind this message's final dot; None where it cannot go so."""
    if following is None or opened is None or opened.error is not None or not opened.data:
        return None
    if not ledger.may_open(following):
        return None
    try:
        return ledger.build(following)
    except Unsendable:
        return None  # its turn builds it again and records why


def _hand_over(
    ledger: Ledger[I, C],
    smtp: SmtpTransport,
    item: I,
    check: C,
    opened: Opened | None,
    following: I | None,
    upcoming: bytes | None,
) -> tuple[Flight[I, C] | None, Opened | None]:
    """The rest of a message whose envelope is open (None: it could not be built), with
    the following message's envelope behind its final dot when that one is built
    (`upcoming`). Its record starts once the relay answers the dot (failures are recorded
    here). Returns that record in flight, and the following message opened ahead."""
    if opened is None:  # unsendable: built again and recorded the usual way
        ledger.usual(item, check, None)
        return None, None
    error = opened.error
    if error is None:
        try:
            if opened.data:
                behind = None
                if following is not None and upcoming is not None:
                    behind = (*ledger.envelope(following), len(upcoming))
                smtp.finish(behind)
            else:
                smtp.data(opened.message)
        except SendError as failed:
            error = failed
    flight = None
    if error is not None:
        ledger.failed(item, error)
    else:
        ledger.handed(item)
        flight = Flight(item, ledger.record(item, following))
    return flight, _opened_ahead(smtp, upcoming)


def _opened_ahead(smtp: SmtpTransport, upcoming: bytes | None) -> Opened | None:
    """The message whose envelope went behind the last final dot, streamed up to its own
    final dot once the relay opened its DATA (or the relay's refusal)."""
    if upcoming is None or not smtp.ahead_written:
        return None
    try:
        smtp.opened()
        smtp.stream(upcoming)
    except SendError as error:
        return Opened(upcoming, error)
    return Opened(upcoming, None, data=True)


def _open(ledger: Ledger[I, C], smtp: SmtpTransport, item: I) -> Opened | None:
    return open_envelope(smtp, lambda: ledger.build(item), *ledger.envelope(item))


def _land(ledger: Ledger[I, C], flight: Flight[I, C]) -> C | None:
    """Wait for the record in flight; its outcome, and the next reader's status."""
    recorded, check = flight.landing()
    ledger.landed(flight.item, recorded)
    return check
