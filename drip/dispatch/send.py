"""Send and record: carry out a batch of plans, one SMTP hand-off at a time.

- Nobody gets a lesson twice: `deliveries` is unique per (enrollment, lesson); each delivery
  is written as `sending` before its hand-off, and the outcome of each hand-off is committed
  before the next message is handed over. On PostgreSQL every commit is synchronous
  (flushed to disk before it returns: drip.store.db), so a database crash loses no
  recorded outcome.
- An unsubscribe takes effect at once: each reader's status is read again after the previous
  hand-off is recorded (in the same transaction), so only building the message lies between
  that read and the hand-off; a lesson not yet handed to SMTP is not sent.
- Every change a worker makes to a reader is conditional on its lease (`lease_owner`): a
  worker whose lease ran out (a very slow relay) finds the reader another worker's, changes
  nothing, logs it and moves on.
- The one ambiguous case is a message the SMTP server may have accepted whose outcome was
  not learnt: the connection was lost after DATA, or the worker died before recording it.
  It is sent again under the same Message-ID (receivers that collapse duplicate Message-IDs
  show it once), at most one per SMTP session, and its delivery keeps the note "outcome
  unknown, re-sent" (drip.store.models.OUTCOME_UNKNOWN).
- A relay outage releases the rest of the batch without using up an attempt.
- The tally triggers lock their rows in one order for every worker
  (drip.dispatch.record.lock_tallies), so two batches never wait for each other in a circle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, closing
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    insert,
    update,
)
from sqlalchemy.engine import Dialect

from drip.core.clock import Clock, system_clock
from drip.core.config import Settings
from drip.deliverability.verp import return_path
from drip.dispatch.lane import Check, Landing, by_reader, in_turn, lanes_for, overlapped
from drip.dispatch.lesson_records import Records
from drip.dispatch.plan import Plan, Send, Settle
from drip.dispatch.record import (
    ADVANCE,
    CONFIRMATION_SENT,
    LEASE_LOST,
    MARK_SENT,
    RECORD_CONFIRMED_AND_CHECK,
    RECORD_SENT_AND_CHECK,
    STILL_WANTED,
    lock_tallies,
)
from drip.dispatch.report import Outcome, OutcomeStatus, PassReport
from drip.dispatch.write_ahead import Ready, WriteAhead
from drip.mail.handoff import Unsendable, checked_message
from drip.mail.links import Links
from drip.mail.pace import Pace
from drip.mail.render import Renderer
from drip.mail.sessions import Sessions
from drip.mail.transports import SendError, SmtpTransport, Transport
from drip.store.deferred import Deferred
from drip.store.direct import Direct
from drip.store.models import (
    DeliveryStatus,
    EnrollmentStatus,
    EventKind,
    WorkerHeartbeat,
)

log = logging.getLogger(__name__)


HEARTBEATS = cast(Table, WorkerHeartbeat.__table__)


class Recorder:
    """Carries out one batch of plans for one worker, recording each outcome."""

    def __init__(
        self,
        dialect: Dialect,
        settings: Settings,
        renderer: Renderer,
        links: Links,
        worker_id: str,
        pace: Pace | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.pace = pace
        self.renderer = renderer
        self.links = links
        self.worker_id = worker_id
        self.ahead = WriteAhead(settings, renderer, worker_id)
        self.records = Records(settings, worker_id)
        postgres = dialect.name == "postgresql"
        self._record_one = Deferred(RECORD_SENT_AND_CHECK, dialect) if postgres else None
        self._confirm_one = Deferred(RECORD_CONFIRMED_AND_CHECK, dialect) if postgres else None
        self._mark_sent = Direct(MARK_SENT, dialect)
        self._advance = Direct(ADVANCE, dialect)
        self._check = Direct(STILL_WANTED, dialect)
        # The worker's clock when the pass began: a pass's `now` plus the time since is the
        # moment of each hand-off, whatever instant (`--now`) the pass runs as.
        self.clock = clock
        self.pass_started = clock()

    def carry_out(
        self,
        conn: Connection,
        plans: Sequence[Plan],
        now: datetime,
        sessions: Sessions,
        progress: Callable[[Outcome], None] | None,
    ) -> tuple[list[Outcome], bool]:
        """Settle the readers that get no message, send the others; True if the relay was
        down or asked drip to slow down (the readers not tried are released for later).

        With DRIP_SMTP_CONNECTIONS above 1 the messages go out over that many SMTP sessions
        at once, each on a database connection of its own, and each keeps every guarantee
        of one: its outcome recorded before its next hand-off, the status read before each."""
        plans = [self.ahead.renderable(p, now) for p in plans]
        sends = [p for p in plans if isinstance(p, Send)]
        connections = self.settings.smtp_connections
        sessions.open_ahead(lanes_for(sends, connections, lambda s: s.claimed.reader.subscriber_id))
        settles = sorted(
            (p for p in plans if isinstance(p, Settle)), key=lambda p: p.claimed.enrollment_id
        )
        built = self.ahead.build(conn, sends, now)  # before any tally is locked
        lock_tallies(conn, settles, sends)
        ready = self.ahead.prepare(conn, built, now)
        outcomes = [self.records.settle(conn, p, now) for p in settles]
        conn.commit()
        shares = by_reader(ready, connections, lambda r: r.send.claimed.reader.subscriber_id)
        if len(shares) == 1:
            sent, relay_down = self._lane(conn, shares[0], now, sessions, progress)
            return outcomes + sent, relay_down

        def run(lane: list[Ready]) -> tuple[list[Outcome], bool]:
            with conn.engine.connect() as lane_conn:
                return self._lane(lane_conn, lane, now, sessions, progress)

        with ThreadPoolExecutor(len(shares), thread_name_prefix="smtp") as pool:
            results = list(pool.map(run, shares))
        return (
            outcomes + [o for sent, _ in results for o in sent],
            any(down for _, down in results),
        )

    def _lane(
        self,
        conn: Connection,
        ready: list[Ready],
        now: datetime,
        transport: Callable[[], AbstractContextManager[Transport]],
        progress: Callable[[Outcome], None] | None,
    ) -> tuple[list[Outcome], bool]:
        """One SMTP session through its share of the batch, in order."""
        with transport() as relay:
            ledger = LessonLedger(self, conn, relay, now, progress)
            if not (progress or self.pace) and isinstance(relay, SmtpTransport):
                overlapped(ledger, ready)  # the next envelope behind each final dot
            else:
                in_turn(ledger, ready, self.pace)
        return ledger.outcomes, ledger.relay_down

    def still_wanted(self, conn: Connection, item: Ready) -> Check:
        """Checked right before each hand-off: an unsubscribe takes effect at once, and a
        reader another worker claimed once this one's lease ran out is left to that worker.

        Usually the check rides on the transaction that records the previous message (see
        `record_sent`): between it and the hand-off lie only that commit and building the
        message, as when it ran on its own. A `progress` callback in between makes the
        pass read the status again, here, after the callback."""
        row = conn.execute(STILL_WANTED, {"p_check": item.send.claimed.enrollment_id}).first()
        conn.rollback()
        return self._verdict(item, row)

    def _verdict(self, item: Ready, row: Any) -> Check:
        """From (status, suppressed_at, lease_owner) of the item's enrollment, or None if
        it is gone."""
        if row is not None and row[2] != self.worker_id:
            return Check.TAKEN  # checked first: the delivery row is no longer this worker's
        if row is None or row[0] != item.send.claimed.status or row[1] is not None:
            return Check.LEFT
        return Check.SEND

    def send_one(
        self,
        conn: Connection,
        relay: Transport,
        item: Ready,
        now: datetime,
        check: Check,
        following: Ready | None,
    ) -> tuple[Outcome, Check | None]:
        """Hand one message over and record the outcome; also gives the check of
        `following` when recording could read it in the same transaction (else None)."""
        send, claimed = item.send, item.send.claimed
        if check is Check.TAKEN:  # the delivery row is the other worker's now: leave it be
            return send.outcome(
                OutcomeStatus.SKIPPED, "claimed by another worker after this one's lease ran out"
            ), None
        if check is Check.LEFT:
            if self.records.change(
                conn, item, delivery={"status": DeliveryStatus.CANCELLED, "updated_at": now}
            ):
                conn.commit()
            return send.outcome(OutcomeStatus.SKIPPED, "left before the hand-off"), None
        try:
            message = self.message(item, now)
        except Unsendable as error:
            return self.records.unsendable(conn, item, now, str(error)), None
        try:
            relay.send(
                self.return_path(item),
                claimed.reader.email,
                message,
                name=f"{now:%Y%m%dT%H%M%S}-{claimed.enrollment_id}-{send.lesson_key}",
            )
        except SendError as error:
            return self.records.failed(conn, item, now, error), None
        recorded, after = self.record_sent(conn, item, self.handed_off(now), following)
        return self.sent(item, recorded), after

    def sent(self, item: Ready, recorded: bool) -> Outcome:
        """The outcome of a message handed over, recorded or (its lease lost) not."""
        if recorded:
            return item.send.outcome(OutcomeStatus.SENT)
        detail = f"handed over, not recorded: {LEASE_LOST}"
        log.warning("enrollment %s: %s", item.send.claimed.enrollment_id, detail)
        return item.send.outcome(OutcomeStatus.SENT, detail)

    def _confirmed(self, conn: Connection, item: Ready, handed_off: datetime) -> bool:
        """A confirmation handed over, recorded in one transaction (SQLite): the enrollment
        waits for the reader's click, and the reader's timeline shows it."""
        sent = {
            "p_enrollment": item.send.claimed.enrollment_id,
            "p_me": self.worker_id,
            "p_at": handed_off,
        }
        if not conn.execute(CONFIRMATION_SENT, sent).rowcount:
            conn.rollback()  # the lease was lost: the worker that holds the reader decides
            return False
        self.records.event(conn, item, handed_off, EventKind.CONFIRMATION_SENT, item.message_id)
        conn.commit()
        return True

    def handed_off(self, now: datetime) -> datetime:
        return now + max(self.clock() - self.pass_started, timedelta())

    def return_path(self, item: Ready) -> str:
        claimed = item.send.claimed
        return return_path(
            self.settings, item.template.sender, item.delivery_id, claimed.enrollment_id
        )

    def record_sent(
        self, conn: Connection, item: Ready, handed_off: datetime, following: Ready | None
    ) -> tuple[bool, Check | None]:
        """Record a message handed over at `handed_off`, in one commit, if this worker still
        holds the reader (False if not: nothing changed): a lesson's delivery marked sent
        and the reader moved on (the next lesson's delay counts from that moment), or a
        confirmation's enrollment left waiting for the click, with its timeline event. In
        the same transaction, read whether the next reader of the batch is still wanted."""
        return self.record_later(conn, item, handed_off, following)()

    def record_later(
        self, conn: Connection, item: Ready, handed_off: datetime, following: Ready | None
    ) -> Landing[Check]:
        """`record_sent`, whose outcome the returned call waits for. On PostgreSQL it is one
        statement, atomic on its own (no BEGIN and COMMIT round trips), sent without waiting
        (drip.store.deferred): the lane builds the next message meanwhile."""
        params = self._record_params(item, handed_off, following)
        driver = conn.connection.dbapi_connection
        assert driver is not None and not conn.in_transaction()
        confirmation = item.send.lesson is None
        deferred = self._confirm_one if confirmation else self._record_one
        if deferred is not None:
            pending = deferred.send(cast(Any, driver), params)
            return lambda: self._recorded(pending.result(), following)
        if confirmation:
            recorded = self._confirmed(conn, item, handed_off)
            return lambda: (recorded, None)  # the following reader's status is read anew
        with closing(driver.cursor()) as cursor:
            recorded = self._mark_sent.run(cursor, params).rowcount > 0
            self._advance.run(cursor, params)
            row = self._check.run(cursor, params).fetchone() if following else None
            driver.commit()
        found = (recorded, *(row or (None,)))
        return lambda: self._recorded(found, following)

    def _recorded(self, row: Any, following: Ready | None) -> tuple[bool, Check | None]:
        """(recorded, the following reader's status) from (recorded, its status row)."""
        if following is None:
            return bool(row[0]), None
        status = None if row[1] is None else row[1:]
        return bool(row[0]), self._verdict(following, status)

    def _record_params(
        self, item: Ready, handed_off: datetime, following: Ready | None
    ) -> dict[str, Any]:
        send = item.send
        done = send.after is None
        return {
            "p_delivery": item.delivery_id,
            "p_me": self.worker_id,
            "p_at": handed_off,
            "p_version": item.template.version,
            "p_enrollment": send.claimed.enrollment_id,
            "p_after": send.after,
            "p_after_due": send.after_due(handed_off),
            "p_status": EnrollmentStatus.COMPLETED if done else EnrollmentStatus.ACTIVE,
            "p_done_at": handed_off if done else None,
            "p_check": following.send.claimed.enrollment_id if following else 0,
            "p_detail": item.message_id,
        }

    def message(self, item: Ready, now: datetime) -> bytes:
        """The message for the item's reader; raises Unsendable (drip.mail.handoff)."""
        reader = item.send.claimed.reader
        return checked_message(
            reader.email,
            lambda: item.template.build(
                reader, self.links, item.message_id, now, attachments=item.attachments
            ),
        )

    def heartbeat(
        self, conn: Connection, now: datetime, started_at: datetime, report: PassReport
    ) -> None:
        """The worker's row for /healthz and the admin: when it last passed, and how it went."""
        table = HEARTBEATS
        values = {
            "last_pass_at": now,
            "last_pass_sent": report.count(OutcomeStatus.SENT),
            "last_pass_failed": report.count(OutcomeStatus.FAILED)
            + report.count(OutcomeStatus.SUPPRESSED),
        }
        changed = conn.execute(
            update(table).where(table.c.worker == self.worker_id).values(**values)
        ).rowcount
        if not changed:
            conn.execute(
                insert(table).values(worker=self.worker_id, started_at=started_at, **values)
            )
        conn.commit()


class LessonLedger:
    """How the one hand-off lane (drip.dispatch.lane) reads and records the lessons
    and confirmations of one SMTP session."""

    def __init__(
        self,
        recorder: Recorder,
        conn: Connection,
        relay: Transport,
        now: datetime,
        progress: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.recorder, self.conn, self.relay, self.now = recorder, conn, relay, now
        self.progress = progress
        self.outcomes: list[Outcome] = []
        self.relay_down = False

    def smtp(self) -> SmtpTransport | None:
        return self.relay if isinstance(self.relay, SmtpTransport) else None

    def stopped(self) -> bool:
        return self.relay_down

    def release(self, item: Ready) -> None:
        self.recorder.records.release(self.conn, item, self.now)

    def read(self, item: Ready) -> Check:
        return self.recorder.still_wanted(self.conn, item)

    def goes(self, item: Ready, check: Check) -> bool:
        return check is Check.SEND

    def may_open(self, item: Ready) -> bool:
        return True

    def usual(self, item: Ready, check: Check, following: Ready | None) -> Check | None:
        outcome, after = self.recorder.send_one(
            self.conn, self.relay, item, self.now, check, following
        )
        self._add(outcome)
        if self.progress:
            self.progress(outcome)
            return None  # whatever the callback took (or did), read the status again
        return after

    def build(self, item: Ready) -> bytes:
        return self.recorder.message(item, self.now)

    def envelope(self, item: Ready) -> tuple[str, str]:
        return self.recorder.return_path(item), item.send.claimed.reader.email

    def failed(self, item: Ready, error: SendError) -> None:
        self._add(self.recorder.records.failed(self.conn, item, self.now, error))

    def handed(self, item: Ready) -> None:
        """Lessons over a cap were held before the batch (drip.dispatch.lesson_caps)."""

    def record(self, item: Ready, following: Ready | None) -> Landing[Check]:
        handed_off = self.recorder.handed_off(self.now)
        return self.recorder.record_later(self.conn, item, handed_off, following)

    def landed(self, item: Ready, recorded: bool) -> None:
        self._add(self.recorder.sent(item, recorded))

    def _add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.relay_down = outcome.relay_down
