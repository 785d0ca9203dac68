"""The one sender of every kind of message beside the lessons' batches: it asks a producer
(drip.dispatch.producers) for the items due, and for each keeps the same guarantees as a
lesson (drip.dispatch.send):

- claimed with a lease, its Message-ID written on its row before the first hand-off
  (`message_id_for`), so a hand-off whose outcome a dying worker did not record is made
  again under the same id once the lease runs out;
- inside the reader's send window in their zone, or put back to its opening (fresh links
  go at any hour: the reader asked and waits);
- a slot of the one shared budget (DRIP_SEND_RATE) waited for, then the reader's status
  read, then the hand-off: only building the message lies between the read and SMTP
  (drip.dispatch.lane, the lessons' loop too). Every kind's read and record are compiled
  once (drip.dispatch.hot_path); the read rides on the transaction that records the
  previous message (read again if the slot had to be waited for), and on PostgreSQL
  without a pace the database runs that commit while the next envelope opens, the final
  dot waiting for it (drip.dispatch.sender_ledger);
- an offer or a broadcast copy over the reader's daily or weekly cap (or behind a lesson of
  theirs due now) put back to the reader's next window, never dropped (drip.dispatch.caps);
- the outcome committed before the next hand-off, only while the lease is this worker's;
- over DRIP_SMTP_CONNECTIONS SMTP sessions at once, as the lessons go, each on a database
  connection of its own and keeping each of these guarantees; a reader's items share one;
- the one retry rule (`drip.dispatch.producers.after_failure`): the relay's "slow down"
  rests every kind and charges nobody, a permanent refusal suppresses the address, a
  transient one is tried again after `backoff` up to DRIP_MAX_ATTEMPTS;
- the reader's timeline told in `EventKind`s, the outcome in the pass's report and log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, insert
from sqlalchemy.orm import Session

from drip.audience.leaving import suppress
from drip.content.schedule import into_window
from drip.core.config import Settings
from drip.deliverability.sending_pause import sending_paused
from drip.deliverability.verp import return_path
from drip.dispatch.caps import BatchCaps, Caps
from drip.dispatch.claim_ahead import ClaimsAhead
from drip.dispatch.hot_path import HotPath
from drip.dispatch.lane import by_reader, in_turn, lanes_for, overlapped
from drip.dispatch.outcome import Outcome, OutcomeStatus
from drip.dispatch.producers import (
    HOLD,
    Item,
    Lease,
    Next,
    Producer,
    Settled,
    after_failure,
    later,
    outcome_of,
    why_not,
)
from drip.dispatch.record import LEASE_LOST
from drip.dispatch.sender_ledger import SenderLedger, Turn
from drip.mail.handoff import Unsendable, checked_message
from drip.mail.links import Links
from drip.mail.message_ids import message_id_for
from drip.mail.pace import Pace, backoff
from drip.mail.render import Reader, Renderer
from drip.mail.sessions import Sessions
from drip.mail.transports import OnFirstSend, SendError, Transport
from drip.store.models import Event, EventKind, Subscriber

OVER_CAP = "waits for the reader's next window: their daily or weekly cap is reached"
NOT_TRIED = "not tried: the SMTP relay was unreachable or slowing drip down"
log = logging.getLogger(__name__)


@dataclass
class Run:
    """What one run of a producer did: its outcomes, and whether the relay stopped it."""

    outcomes: list[Outcome] = field(default_factory=list)
    throttled: bool = False  # the relay asked drip to slow down: the worker rests
    stopped: bool = False  # the relay was down (or resting): the rest wait for a later pass
    more: bool = False  # a whole batch was due: there may be more


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind


class Sender:
    """Hands over one producer's messages for one worker."""

    def __init__(
        self,
        settings: Settings,
        renderer: Renderer,
        links: Links,
        worker_id: str,
        pace: Pace | None,
    ) -> None:
        self.settings, self.renderer, self.links = settings, renderer, links
        self.worker_id, self.pace = worker_id, pace
        # how long a record takes lately, shared with the lessons' (drip.dispatch.lane)
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.caps = Caps.of(settings)
        self.pass_started = time.monotonic()  # the pass sets it as it starts

    def run(
        self,
        session: Session,
        producer: Producer,
        now: datetime,
        sessions: Sessions,
        batches: int | None = None,
        ahead: ClaimsAhead[Item] | None = None,
    ) -> Run:
        """Send what `producer` has due at `now`, a batch at a time (at most `batches`),
        over `sessions` (the pass's, drip.mail.sessions); with `ahead`, each batch is
        claimed while the one before it is sent (drip.dispatch.claim_ahead)."""
        result = Run()
        done = 0
        while batches is None or done < batches:
            # A batch claimed ahead is read against a guardrail's pause as it is taken.
            items = ahead.take(session.connection()) if ahead is not None else None
            if items is None:
                if sending_paused(session):  # a guardrail stopped all sending meanwhile
                    break
                items = producer.due(session, now, self.settings.batch, self.lease_from(now))
            if ahead is not None:
                ahead.after(items)
            done += 1
            ready = self._prepare(session, producer, items, now, sessions)
            caps = self._batch_caps(session, producer, ready, now)
            ready = self._hold_over_cap(session, producer, ready, now, caps, result)
            session.rollback()  # end the caps' read
            self._lanes(session, producer, ready, now, result, caps, sessions)
            result.more = not result.stopped and len(items) == self.settings.batch
            if not result.more:
                break
        producer.finish(session)
        return result

    def lease_from(self, now: datetime) -> Lease:
        """This worker's lease on a batch claimed now. It runs from the claim, not from the
        pass's `now`: a long pass would otherwise claim its last batches with leases over."""
        elapsed = timedelta(seconds=time.monotonic() - self.pass_started)
        return Lease(self.worker_id, now + elapsed + self.lease)

    def would_send(self, session: Session, producer: Producer, now: datetime) -> list[Outcome]:
        """What `run` would hand over at `now` (the dry run): the same rows, window and
        status check, nothing leased, written or sent."""
        found = []
        items = producer.due(session, now, self.settings.batch, None)
        caps = self._batch_caps(session, producer, items, now)
        for item in items:
            if producer.render(session, item) is not None or not self._in_window(item, now):
                continue
            if why_not(session, producer, item):
                continue
            if self.capped(caps, item, now) is not None:
                found.append(outcome_of(producer, item, OutcomeStatus.HELD, OVER_CAP))
            else:
                found.append(outcome_of(producer, item, OutcomeStatus.WOULD_SEND))
        return found

    def _prepare(
        self,
        session: Session,
        producer: Producer,
        items: list[Item],
        now: datetime,
        sessions: Sessions,
    ) -> list[Item]:
        """Render each claimed item and write its Message-ID ahead (one commit), the SMTP
        sessions for the rest connecting meanwhile; an item outside its window, or whose
        course cannot be read, is put back."""
        ready, ahead = [], []
        for item in items:
            unreadable = producer.render(session, item)
            if unreadable is not None or not self._in_window(item, now):
                at = now + HOLD if unreadable is not None else self._opens(item, now)
                self.settle(
                    session,
                    producer,
                    item,
                    now,
                    Settled(OutcomeStatus.HELD, item.attempts, unreadable, at),
                )
                continue
            if (
                item.message_id is None and item.template is not None
            ):  # else the status read refuses
                item.message_id = message_id_for(
                    self.settings.secret_key,
                    item.enrollment_id,
                    item.label,
                    item.template.sender,
                    self.renderer.domain,
                )
                ahead.append(item)
            ready.append(item)
        connections = self.settings.smtp_connections
        sessions.open_ahead(lanes_for(ready, connections, lambda i: i.subscriber_id))
        if ahead:
            producer.write_ahead(session, ahead, self.worker_id)
        session.commit()
        return ready

    def _hold_over_cap(
        self,
        session: Session,
        producer: Producer,
        ready: list[Item],
        now: datetime,
        caps: BatchCaps | None,
        result: Run,
    ) -> list[Item]:
        """Hold, in one commit, the items whose reader is over a cap before the batch starts
        (a broadcast on a lesson day under the daily cap of one holds most of its copies):
        at its turn each cost a status read, an update and a commit of its own. The rest;
        the lane still asks before each hand-off, counting what the batch handed over."""
        if caps is None:
            return ready
        going = []
        for item in ready:
            until = self.capped(caps, item, now)
            if until is None:
                going.append(item)
            else:
                result.outcomes.append(self._hold(session, producer, item, until))
        if len(going) < len(ready):
            session.commit()
        return going

    def _lanes(
        self,
        session: Session,
        producer: Producer,
        ready: list[Item],
        now: datetime,
        result: Run,
        caps: BatchCaps | None,
        sessions: Sessions,
    ) -> None:
        """The batch over DRIP_SMTP_CONNECTIONS sessions at once, as the lessons go: each
        lane on a database connection of its own keeps every guarantee of one. A reader's
        items share a lane, so they go in order and their caps are counted in one place."""

        def lane(share: list[Item], on: Session) -> None:
            """One SMTP session through its share of the batch, in order."""
            with OnFirstSend(sessions) as relay, self._hot(on, producer) as hot:
                self._send(on, relay, producer, share, now, result, caps, hot)

        def own_lane(share: list[Item]) -> None:
            with Session(_engine(session)) as own:
                lane(share, own)

        shares = by_reader(ready, self.settings.smtp_connections, lambda i: i.subscriber_id)
        if len(shares) == 1:
            lane(shares[0], session)
            return
        with ThreadPoolExecutor(len(shares), thread_name_prefix="smtp") as pool:
            list(pool.map(own_lane, shares))

    def _send(
        self,
        session: Session,
        relay: OnFirstSend,
        producer: Producer,
        ready: list[Item],
        now: datetime,
        result: Run,
        caps: BatchCaps | None,
        hot: HotPath,
    ) -> None:
        """The batch's hand-offs in order, each outcome recorded before the next; with the
        hot path, recording one reads the next reader's status in the same transaction."""
        ledger = SenderLedger(self, session, relay, producer, now, result, caps, hot)
        if self.pace is None:
            overlapped(ledger, ready)  # the next envelope behind each final dot
        else:
            in_turn(ledger, ready, self.pace)

    def one(
        self, session: Session, relay: Transport, producer: Producer, turn: Turn, run: Run
    ) -> tuple[Outcome, str | None]:
        """One item whose reader's status the lane has read (after the slot): held over a
        cap, skipped, or handed over and recorded; also gives the status of the following
        item's reader when recording read it (else None)."""
        item, now, caps, why = turn.item, turn.now, turn.caps, turn.check
        until = None if why else self.capped(caps, item, now)
        if until is not None:
            held = self._hold(session, producer, item, until)
            session.commit()
            return held, None
        if why:
            if not self.settle(
                session, producer, item, now, Settled(OutcomeStatus.SKIPPED, item.attempts, why)
            ):
                return outcome_of(producer, item, OutcomeStatus.SKIPPED, LEASE_LOST), None
            return outcome_of(producer, item, OutcomeStatus.SKIPPED, why), None
        try:
            self._hand_over(relay, item, now)
        except (SendError, Unsendable) as error:
            return self.failed(session, producer, item, now, error, run), None
        if caps is not None:
            caps.handed(item.subscriber_id, now)
        return self._record_sent(session, producer, turn)

    def _hand_over(self, relay: Transport, item: Item, now: datetime) -> None:
        """Build the message (all that lies between the status read and SMTP) and send it."""
        message = self.message(item, now)
        relay.send(
            self.envelope_from(item),
            item.email,
            message,
            name=f"{now:%Y%m%dT%H%M%S}-{item.enrollment_id}-{item.label}",
        )

    def message(self, item: Item, now: datetime) -> bytes:
        """The item's message for its reader; raises Unsendable (drip.mail.handoff)."""
        template, mid = item.template, item.message_id
        assert template is not None and mid is not None
        reader = Reader(item.email, item.first_name, item.subscriber_id, item.enrollment_id)
        return checked_message(
            item.email, lambda: template.build(reader, self.links, mid, now, extra=item.extra)
        )

    def envelope_from(self, item: Item) -> str:
        assert item.template is not None
        return return_path(self.settings, item.template.sender, None, item.enrollment_id)

    def _record_sent(
        self, session: Session, producer: Producer, turn: Turn
    ) -> tuple[Outcome, str | None]:
        """The sent event and the row's outcome in one commit, while the lease is ours."""
        item, now = turn.item, turn.now
        sent = Settled(OutcomeStatus.SENT, item.attempts + 1, at=now)
        recorded, check = turn.hot.record_sent(item, sent.attempts, now, turn.following)
        return self.sent(producer, item, recorded), check

    def sent(self, producer: Producer, item: Item, recorded: bool) -> Outcome:
        """The outcome of a message handed over, recorded or (its lease lost) not."""
        if not recorded:
            log.warning("%s %s handed over, not recorded: %s", item.label, item.row_id, LEASE_LOST)
        return outcome_of(producer, item, OutcomeStatus.SENT)

    def failed(
        self,
        session: Session,
        producer: Producer,
        item: Item,
        now: datetime,
        error: SendError | Unsendable,
        run: Run,
    ) -> Outcome:
        step, settled = after_failure(error, item, now, self.settings.max_attempts)
        run.throttled = run.throttled or step is Next.REST
        run.stopped = step in (Next.REST, Next.RELEASE) or (
            isinstance(error, SendError) and error.connection
        )
        if step in (Next.FAIL, Next.GIVE_UP):
            self._event(session, item, now, producer.failed_event, settled.error or "")
        if step is Next.SUPPRESS:
            subscriber = session.get(Subscriber, item.subscriber_id)
            if subscriber is not None:
                suppress(session, subscriber, now, str(error))
        if not self.settle(session, producer, item, now, settled):
            return outcome_of(producer, item, OutcomeStatus.SKIPPED, LEASE_LOST)
        detail = str(error) if step is not Next.GIVE_UP else settled.error or ""
        if step is Next.REST:
            detail += "; the relay asked drip to slow down"
        return outcome_of(producer, item, settled.status, detail, run.stopped, step is Next.REST)

    def release(self, item: Item, now: datetime) -> Settled:
        """A message not tried because the relay is down or resting: no attempt used."""
        return Settled(
            OutcomeStatus.RETRYING, item.attempts, NOT_TRIED, later(now, backoff(1), item.window)
        )

    def settle(
        self, session: Session, producer: Producer, item: Item, now: datetime, settled: Settled
    ) -> bool:
        """Record and commit, only while the row is this worker's (else nothing changes)."""
        if self._settled(session, producer, item, settled):
            session.commit()
            return True
        session.rollback()
        return False

    def _settled(self, session: Session, producer: Producer, item: Item, settled: Settled) -> bool:
        """Record while the row is this worker's (else say so); the caller ends the transaction."""
        if producer.settle(session, item, settled, self.worker_id):
            return True
        log.warning("%s %s left alone: %s", item.label, item.row_id, LEASE_LOST)
        return False

    def _hold(self, session: Session, producer: Producer, item: Item, until: datetime) -> Outcome:
        """The item waits for `until`, its reader over a cap; the caller commits."""
        held = Settled(OutcomeStatus.HELD, item.attempts, OVER_CAP, until)
        if not self._settled(session, producer, item, held):
            return outcome_of(producer, item, OutcomeStatus.SKIPPED, LEASE_LOST)
        return outcome_of(producer, item, OutcomeStatus.HELD, OVER_CAP)

    @contextmanager
    def _hot(self, session: Session, producer: Producer) -> Iterator[HotPath]:
        """The producer's status reads and sent records on a connection of their own."""
        with _engine(session).connect() as conn:
            yield HotPath(conn, producer, producer.sent_event, self.worker_id)

    def _batch_caps(
        self, session: Session, producer: Producer, items: list[Item], now: datetime
    ) -> BatchCaps | None:
        """What the batch's readers were handed, for a capped kind (None: not capped)."""
        if not producer.capped or not items:
            return None
        return BatchCaps(session, [i.subscriber_id for i in items], now, self.caps)

    @staticmethod
    def capped(caps: BatchCaps | None, item: Item, now: datetime) -> datetime | None:
        """When a capped kind may go to this reader, if not now (None: now)."""
        if caps is None or item.window is None:
            return None
        return caps.wait(item.subscriber_id, item.window[1], item.window[0], now)

    @staticmethod
    def _in_window(item: Item, now: datetime) -> bool:
        return item.window is None or into_window(now, *item.window) == now

    @staticmethod
    def _opens(item: Item, now: datetime) -> datetime:
        assert item.window is not None
        return into_window(now, *item.window)

    @staticmethod
    def _event(session: Session, item: Item, now: datetime, kind: EventKind, detail: str) -> None:
        session.execute(
            insert(Event).values(
                subscriber_id=item.subscriber_id,
                enrollment_id=item.enrollment_id,
                kind=kind,
                at=now,
                detail=detail[:2000],
            )
        )
