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

import enum
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Dialect

from drip.content.magnets import magnet_pdf, page_size_for
from drip.content.schedule import into_window, reader_zone
from drip.core.clock import Clock, system_clock
from drip.core.config import Settings
from drip.deliverability.verp import return_path
from drip.dispatch.direct import Direct
from drip.dispatch.plan import HOLD, Plan, Send, Settle, Verdict
from drip.dispatch.record import (
    ADVANCE,
    LEASE_LOST,
    MARK_SENT,
    RECORD_SENT_AND_CHECK,
    STILL_WANTED,
    attempted,
    delivery_leased,
    keep_unknown,
    leased,
    lock_tallies,
)
from drip.dispatch.report import Outcome, OutcomeStatus, PassReport
from drip.mail.handoff import Unsendable, checked_message
from drip.mail.links import Links
from drip.mail.message_ids import new_message_id, sending_domain
from drip.mail.pace import Pace, backoff
from drip.mail.render import MessageTemplate, Renderer
from drip.mail.transports import SendError, Transport
from drip.store.models import (
    OUTCOME_UNKNOWN,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    Subscriber,
    WorkerHeartbeat,
)

log = logging.getLogger(__name__)


E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
EVENTS = cast(Table, Event.__table__)
HEARTBEATS = cast(Table, WorkerHeartbeat.__table__)


class Check(enum.Enum):
    """What the read right before a hand-off found."""

    SEND = "send"
    LEFT = "left"  # unsubscribed, suppressed or gone: cancel
    TAKEN = "taken"  # another worker claimed the reader after this one's lease ran out


@dataclass(frozen=True)
class Ready:
    """A planned message with its template built and its delivery row written ahead."""

    send: Send
    template: MessageTemplate
    delivery_id: int | None  # None for the confirmation email, which has no delivery row
    message_id: str  # this send's: a retry of it keeps it, a new send gets another
    attachments: tuple[tuple[str, bytes], ...] = ()


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
        postgres = dialect.name == "postgresql"
        self._record_one = Direct(RECORD_SENT_AND_CHECK, dialect) if postgres else None
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
        transport: Callable[[], Transport],
        progress: Callable[[Outcome], None] | None,
    ) -> tuple[list[Outcome], bool]:
        """Settle the readers that get no message, send the others; True if the relay was
        down or asked drip to slow down (the readers not tried are released for later).

        With DRIP_SMTP_CONNECTIONS above 1 the messages go out over that many SMTP sessions
        at once, each on a database connection of its own, and each keeps every guarantee
        of one: its outcome recorded before its next hand-off, the status read before each."""
        plans = [self._renderable(p, now) for p in plans]
        sends = [p for p in plans if isinstance(p, Send)]
        settles = sorted(
            (p for p in plans if isinstance(p, Settle)), key=lambda p: p.claimed.enrollment_id
        )
        built = self._build(conn, sends, now)  # before any tally is locked
        lock_tallies(conn, settles, sends)
        ready = self._prepare(conn, built, now)
        outcomes = [self._settle(conn, p, now) for p in settles]
        conn.commit()
        lanes = max(1, min(self.settings.smtp_connections, len(ready)))
        if lanes == 1:
            sent, relay_down = self._lane(conn, ready, now, transport, progress)
            return outcomes + sent, relay_down

        def run(lane: list[Ready]) -> tuple[list[Outcome], bool]:
            with conn.engine.connect() as lane_conn:
                return self._lane(lane_conn, lane, now, transport, progress)

        with ThreadPoolExecutor(lanes, thread_name_prefix="smtp") as pool:
            results = list(pool.map(run, [ready[i::lanes] for i in range(lanes)]))
        return (
            outcomes + [o for sent, _ in results for o in sent],
            any(down for _, down in results),
        )

    def _lane(
        self,
        conn: Connection,
        ready: list[Ready],
        now: datetime,
        transport: Callable[[], Transport],
        progress: Callable[[Outcome], None] | None,
    ) -> tuple[list[Outcome], bool]:
        """One SMTP session through its share of the batch, in order."""
        outcomes: list[Outcome] = []
        relay_down = False
        check: Check | None = None  # the next reader's, when recording already read it
        with transport() as relay:
            for index, item in enumerate(ready):
                if relay_down:
                    self._release(conn, item, now)
                    continue
                if self.pace is not None and self.pace.wait():
                    check = None  # it waited for its slot: read the status again, now
                following = ready[index + 1] if index + 1 < len(ready) else None
                if check is None:
                    check = self._still_wanted(conn, item)
                outcome, check = self._send_one(conn, relay, item, now, check, following)
                outcomes.append(outcome)
                if progress:
                    progress(outcome)
                    check = None  # whatever the callback took (or did), read it again
                relay_down = outcome.relay_down
        return outcomes, relay_down

    # -- before the hand-offs -----------------------------------------------------------------

    def _renderable(self, plan: Plan, now: datetime) -> Plan:
        """A message its sequence cannot render holds its reader, with the reason: the
        failure stays with that sequence, and every other reader of the batch is sent."""
        if not isinstance(plan, Send):
            return plan
        try:
            self._template(plan)
        except Exception as error:  # whatever the author's files did: hold, never crash
            log.exception(
                "%s/%s cannot be rendered; its readers are held",
                plan.sequence.slug,
                plan.lesson_key,
            )
            return Settle(
                plan.claimed,
                Verdict.HELD,
                plan.lesson_key,
                f"{plan.sequence.slug}/{plan.lesson_key} cannot be rendered "
                f"(run `drip check`): {' '.join(str(error).split())}"[:1000],
                hold_until=now + HOLD,
            )
        return plan

    def _settle(self, conn: Connection, settle: Settle, now: datetime) -> Outcome:
        values: dict[str, Any] = {"due_at": None, "lease_owner": None}
        if settle.verdict is Verdict.SUPPRESSED:
            values.update(status=EnrollmentStatus.SUPPRESSED)
        elif settle.verdict is Verdict.HELD:
            values.update(due_at=settle.hold_until, last_error=settle.reason)
        elif settle.verdict is Verdict.COMPLETED:
            values.update(status=EnrollmentStatus.COMPLETED, completed_at=now, next_lesson=None)
        else:
            # An address SMTP cannot carry without SMTPUTF8 would stop the pass at every
            # attempt: set the reader aside for the operator. An unconfirmed reader stays
            # unconfirmed (and expires); an active one is paused.
            values.update(last_error=settle.reason)
            if settle.claimed.status == EnrollmentStatus.ACTIVE:
                values.update(status=EnrollmentStatus.PAUSED, paused_reason=settle.reason)
        changed = conn.execute(
            update(E)
            .where(E.c.id == settle.claimed.enrollment_id, leased(self.worker_id))
            .values(**values)
        ).rowcount
        if not changed:
            return self._lost(settle.claimed.enrollment_id, settle.outcome())
        return settle.outcome()

    def _lost(self, enrollment_id: int, outcome: Outcome) -> Outcome:
        """A reader whose lease this worker lost: nothing of theirs was changed."""
        log.warning("enrollment %s left alone: %s", enrollment_id, LEASE_LOST)
        return replace(outcome, status=OutcomeStatus.SKIPPED, detail=LEASE_LOST)

    def _build(
        self, conn: Connection, sends: list[Send], now: datetime
    ) -> list[tuple[Send, MessageTemplate, tuple[tuple[str, bytes], ...]]]:
        """Each message's template and attachments, built before anything is written."""
        built = []
        for s in sends:
            pdf = self._lead_magnet(conn, s, now) if s.attach_magnet else ()
            # A welcome that carries the PDF says it is attached.
            template = (
                self.renderer.lesson(s.sequence, s.lesson, attached=True)
                if pdf and s.lesson is not None
                else self._template(s)
            )
            built.append((s, template, pdf))
        return built

    def _prepare(
        self,
        conn: Connection,
        built: list[tuple[Send, MessageTemplate, tuple[tuple[str, bytes], ...]]],
        now: datetime,
    ) -> list[Ready]:
        """Record each lesson's delivery as `sending` before the hand-off (the caller commits
        them all at once): new rows in one insert ordered by lesson, as the tallies are."""
        new = sorted(
            (
                (s, t)
                for s, t, _ in built
                if s.lesson is not None and s.lesson_key not in s.claimed.earlier
            ),
            key=lambda st: (st[0].claimed.sequence, st[0].lesson_key, st[0].claimed.enrollment_id),
        )
        ids: dict[int, int] = {}
        mids: dict[int, str] = {}
        if new:
            values: list[dict[str, Any]] = [
                {
                    "enrollment_id": s.claimed.enrollment_id,
                    "lesson": s.lesson_key,
                    "lesson_version": t.version,
                    "status": DeliveryStatus.SENDING,
                    "attempts": 0,
                    "message_id": self._new_id(s, t),
                    "created_at": now,
                    "updated_at": now,
                }
                for s, t in new
            ]
            rows = conn.execute(
                insert(D).returning(D.c.id, D.c.enrollment_id, sort_by_parameter_order=True), values
            ).all()
            ids = {row.enrollment_id: row.id for row in rows}
            mids = {value["enrollment_id"]: value["message_id"] for value in values}
        for s, _, _ in built:
            if s.lesson is not None and s.lesson_key in s.claimed.earlier:
                delivery_id, previous, stored = s.claimed.earlier[s.lesson_key]
                ids[s.claimed.enrollment_id], mids[s.claimed.enrollment_id] = delivery_id, stored
                self._again(conn, delivery_id, previous, now)
        return [
            Ready(
                s,
                t,
                ids.get(s.claimed.enrollment_id),
                mids.get(s.claimed.enrollment_id) or self._confirmation_id(conn, s, t),
                attachments,
            )
            for s, t, attachments in built
        ]

    def _again(
        self, conn: Connection, delivery_id: int, previous: DeliveryStatus, now: datetime
    ) -> None:
        """An earlier delivery of the lesson goes out again; one left `sending` had an
        unknown outcome (its worker stopped before recording it), which its note keeps."""
        values: dict[str, Any] = {"status": DeliveryStatus.SENDING, "updated_at": now}
        if previous == DeliveryStatus.SENDING:
            values["last_error"] = keep_unknown(
                f"{OUTCOME_UNKNOWN}: the previous attempt's worker stopped before recording "
                "its outcome; sent again with the same Message-ID"
            )
        conn.execute(
            update(D).where(D.c.id == delivery_id, delivery_leased(self.worker_id)).values(**values)
        )

    def _new_id(self, send: Send, template: MessageTemplate) -> str:
        """A fresh signed Message-ID for this send, at the domain of its From address."""
        domain = sending_domain(template.sender, self.renderer.domain)
        return new_message_id(
            self.settings.secret_key, send.claimed.enrollment_id, send.lesson_key, domain
        )

    def _confirmation_id(self, conn: Connection, send: Send, template: MessageTemplate) -> str:
        """The confirmation email's id, kept on its enrollment until it is sent: a retry of
        one that failed (or whose outcome a dying worker did not record) reuses it, and a
        fresh one asked for after it went out gets a new one (cleared when sent)."""
        if send.claimed.pending_message_id:
            return send.claimed.pending_message_id
        mid = self._new_id(send, template)
        conn.execute(
            update(E).where(E.c.id == send.claimed.enrollment_id).values(pending_message_id=mid)
        )
        return mid

    def _template(self, send: Send) -> MessageTemplate:
        if send.lesson is not None:
            return self.renderer.lesson(send.sequence, send.lesson)
        return self.renderer.confirmation(send.sequence)

    def _lead_magnet(
        self,
        conn: Connection,
        send: Send,
        now: datetime,
    ) -> tuple[tuple[str, bytes], ...]:
        """The reader's PDF to attach to the welcome lesson (`attach: true`). The lesson
        carries the download link too, so a PDF that cannot be typeset does not hold the
        lesson back: it goes without the attachment, and the log says why."""
        sequence = send.sequence
        attributes = conn.scalar(
            select(S.c.attributes).where(S.c.id == send.claimed.reader.subscriber_id)
        )
        try:
            pdf = magnet_pdf(
                self.settings,
                sequence,
                dict(attributes or {}),
                page_size=page_size_for(send.claimed.timezone),
                today=now.date(),
            )
        except Exception:
            log.exception(
                "lead magnet of %s not attached for enrollment %s (the lesson's "
                "download link still works)",
                sequence.slug,
                send.claimed.enrollment_id,
            )
            return ()
        return ((f"{sequence.slug}.pdf", pdf),)

    # -- the hand-off and its record ----------------------------------------------------------

    def _still_wanted(self, conn: Connection, item: Ready) -> Check:
        """Checked right before each hand-off: an unsubscribe takes effect at once, and a
        reader another worker claimed once this one's lease ran out is left to that worker.

        Usually the check rides on the transaction that records the previous message (see
        `_record_sent`): between it and the hand-off lie only that commit and building the
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

    def _send_one(
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
            if self._change(
                conn, item, delivery={"status": DeliveryStatus.CANCELLED, "updated_at": now}
            ):
                conn.commit()
            return send.outcome(OutcomeStatus.SKIPPED, "left before the hand-off"), None
        mid = item.message_id
        try:
            message = self._message(item, now)
        except Unsendable as error:
            return self._unsendable(conn, item, now, str(error)), None
        try:
            relay.send(
                return_path(
                    self.settings, item.template.sender, item.delivery_id, claimed.enrollment_id
                ),
                claimed.reader.email,
                message,
                name=f"{now:%Y%m%dT%H%M%S}-{claimed.enrollment_id}-{send.lesson_key}",
            )
        except SendError as error:
            return self._failed(conn, item, now, error), None
        unrecorded = send.outcome(OutcomeStatus.SENT, f"handed over, not recorded: {LEASE_LOST}")
        if send.lesson is None:
            sent = {
                "confirmation_sent_at": now,
                "pending_message_id": None,
                "due_at": None,
                "lease_owner": None,
                "attempts": 0,
                "last_error": None,
            }
            if not self._change(conn, item, enrollment=sent):
                return unrecorded, None
            self._event(conn, item, now, EventKind.CONFIRMATION_SENT, mid)
            conn.commit()
            return send.outcome(OutcomeStatus.SENT), None
        handed_off = now + max(self.clock() - self.pass_started, timedelta())
        recorded, after = self._record_sent(conn, item, handed_off, following)
        if not recorded:
            log.warning("enrollment %s: %s", claimed.enrollment_id, unrecorded.detail)
            return unrecorded, after
        return send.outcome(OutcomeStatus.SENT), after

    def _record_sent(
        self, conn: Connection, item: Ready, handed_off: datetime, following: Ready | None
    ) -> tuple[bool, Check | None]:
        """Mark the delivery sent at `handed_off` and move the reader on, in one commit, if
        this worker still holds the reader (False if not: nothing changed; the next lesson's
        delay counts from that moment); in the same transaction, read whether the next
        reader of the batch is still wanted."""
        send = item.send
        done = send.after is None
        params = {
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
        }
        driver = conn.connection.dbapi_connection
        assert driver is not None and not conn.in_transaction()
        with closing(driver.cursor()) as cursor:
            if self._record_one is not None:
                # One statement, on its own atomic, so no BEGIN and COMMIT round trips.
                driver.autocommit = True
                try:
                    row = self._record_one.run(cursor, params).fetchone()
                finally:
                    driver.autocommit = False
                recorded, row = bool(row[0]), row[1:]
            else:
                recorded = self._mark_sent.run(cursor, params).rowcount > 0
                self._advance.run(cursor, params)
                row = self._check.run(cursor, params).fetchone() if following else None
                driver.commit()
        if following is None:
            return recorded, None
        return recorded, self._verdict(following, None if row is None or row[0] is None else row)

    def _change(
        self,
        conn: Connection,
        item: Ready,
        *,
        delivery: dict[str, Any] | None = None,
        enrollment: dict[str, Any] | None = None,
    ) -> bool:
        """Update the item's delivery, then its enrollment (the order in which the tallies
        are locked), only while this worker holds the reader's lease. If it does not, roll
        back and return False: the worker that holds the reader now decides."""
        eid = item.send.claimed.enrollment_id
        changed = True
        if delivery is not None and item.delivery_id is not None:
            changed = bool(
                conn.execute(
                    update(D)
                    .where(D.c.id == item.delivery_id, delivery_leased(self.worker_id))
                    .values(**delivery)
                ).rowcount
            )
        if changed and enrollment is not None:
            changed = bool(
                conn.execute(
                    update(E).where(E.c.id == eid, leased(self.worker_id)).values(**enrollment)
                ).rowcount
            )
        if not changed:
            conn.rollback()
        return changed

    def _failed(
        self,
        conn: Connection,
        item: Ready,
        now: datetime,
        error: SendError,
    ) -> Outcome:
        send, claimed = item.send, item.send.claimed
        if error.throttled:  # the relay's pace, not this reader's: no attempt used up
            released = self._release(conn, item, now, f"the relay asked drip to slow down: {error}")
            outcome = send.outcome(
                OutcomeStatus.RETRYING,
                f"{error}; the relay asked drip to slow down",
                relay_down=True,
                throttled=True,
            )
            return (
                outcome
                if released
                else replace(outcome, status=OutcomeStatus.SKIPPED, detail=LEASE_LOST)
            )
        if not error.charged:  # drip's own side (the outbox's disk): no attempt used up
            log.warning("not sent, the readers wait for the next pass: %s", error)
            self._release(conn, item, now, str(error))
            return send.outcome(OutcomeStatus.RETRYING, str(error), relay_down=True)
        if not error.transient:
            return self._suppress(conn, item, now, error)
        attempts = claimed.attempts + 1
        note = f"{OUTCOME_UNKNOWN}: {error}" if error.unknown else str(error)
        if attempts >= self.settings.max_attempts:
            reason = f"gave up after {attempts} attempts: {error}"
            paused = {
                "status": EnrollmentStatus.PAUSED,
                "paused_reason": reason,
                "due_at": None,
                "lease_owner": None,
                "attempts": attempts,
                "last_error": str(error),
            }
            outcome = send.outcome(OutcomeStatus.FAILED, reason)
            if not self._change(
                conn, item, delivery=attempted(DeliveryStatus.FAILED, now, note), enrollment=paused
            ):
                return self._lost(claimed.enrollment_id, outcome)
            conn.commit()
            return outcome
        retry_at = retry_time(send, now, backoff(attempts))
        again = " under the same Message-ID" if error.unknown else ""
        outcome = send.outcome(
            OutcomeStatus.RETRYING,
            f"{error}; again at {retry_at:%H:%M}{again}",
            relay_down=error.connection,
        )
        retry = {
            "due_at": retry_at,
            "lease_owner": None,
            "attempts": attempts,
            "last_error": str(error),
        }
        if not self._change(
            conn, item, delivery=attempted(DeliveryStatus.RETRYING, now, note), enrollment=retry
        ):
            return self._lost(claimed.enrollment_id, outcome)
        conn.commit()
        return outcome

    def _suppress(self, conn: Connection, item: Ready, now: datetime, error: SendError) -> Outcome:
        """A permanent refusal: the address is suppressed, and every course it is in stops."""
        claimed = item.send.claimed
        outcome = item.send.outcome(OutcomeStatus.SUPPRESSED, str(error))
        stopped = {
            "status": EnrollmentStatus.SUPPRESSED,
            "due_at": None,
            "lease_owner": None,
            "last_error": str(error),
        }
        if not self._change(
            conn,
            item,
            delivery=attempted(DeliveryStatus.FAILED, now, str(error)),
            enrollment=stopped,
        ):
            return self._lost(claimed.enrollment_id, outcome)
        conn.execute(
            update(E)
            .where(
                E.c.subscriber_id == claimed.reader.subscriber_id,
                E.c.status.in_(
                    [EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING, EnrollmentStatus.PAUSED]
                ),
            )
            .values(**stopped)
        )
        conn.execute(
            update(S)
            .where(S.c.id == claimed.reader.subscriber_id)
            .values(suppressed_at=now, suppressed_reason=str(error))
        )
        self._event(conn, item, now, EventKind.SUPPRESSED, str(error))
        conn.commit()
        return outcome

    def _message(self, item: Ready, now: datetime) -> bytes:
        """The message for the item's reader; raises Unsendable (drip.mail.handoff)."""
        reader = item.send.claimed.reader
        return checked_message(
            reader.email,
            lambda: item.template.build(
                reader, self.links, item.message_id, now, attachments=item.attachments
            ),
        )

    def _unsendable(self, conn: Connection, item: Ready, now: datetime, reason: str) -> Outcome:
        """A message that cannot be built or addressed for this one reader: its delivery
        fails with the reason, on the reader's timeline too, and the reader is set aside
        for the operator as an address SMTP cannot carry is (an active one paused); the
        rest of the pass goes on."""
        claimed = item.send.claimed
        outcome = item.send.outcome(OutcomeStatus.FAILED, reason)
        values: dict[str, Any] = {"due_at": None, "lease_owner": None, "last_error": reason}
        if claimed.status == EnrollmentStatus.ACTIVE:
            values.update(status=EnrollmentStatus.PAUSED, paused_reason=reason)
        if not self._change(
            conn, item, delivery=attempted(DeliveryStatus.FAILED, now, reason), enrollment=values
        ):
            return self._lost(claimed.enrollment_id, outcome)
        self._event(conn, item, now, EventKind.NOT_SENT, f"{item.send.lesson_key}: {reason}")
        conn.commit()
        return outcome

    def _release(
        self,
        conn: Connection,
        item: Ready,
        now: datetime,
        why: str = "not tried: the SMTP relay was unreachable or slowing drip down",
    ) -> bool:
        """Put back a reader the pass did not try because the relay is down or asked drip
        to slow down: no attempt used. False if the reader is another worker's now."""
        released = self._change(
            conn,
            item,
            delivery={
                "status": DeliveryStatus.RETRYING,
                "updated_at": now,
                "last_error": keep_unknown(why[:2000]),
            },
            enrollment={"due_at": retry_time(item.send, now, backoff(1)), "lease_owner": None},
        )
        if released:
            conn.commit()
        else:
            log.warning("enrollment %s left alone: %s", item.send.claimed.enrollment_id, LEASE_LOST)
        return released

    def _event(
        self, conn: Connection, item: Ready, now: datetime, kind: EventKind, detail: str
    ) -> None:
        claimed = item.send.claimed
        conn.execute(
            insert(EVENTS).values(
                subscriber_id=claimed.reader.subscriber_id,
                enrollment_id=claimed.enrollment_id,
                kind=kind,
                at=now,
                detail=detail,
            )
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


def retry_time(send: Send, now: datetime, wait: timedelta) -> datetime:
    """`wait` from now, moved into the send window unless the message goes at any hour."""
    if send.immediate:
        return now + wait
    sequence = send.sequence
    return into_window(
        now + wait, sequence.window, reader_zone(send.claimed.timezone, sequence.timezone)
    )
