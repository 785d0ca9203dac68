"""Send and record: carry out a batch of plans, one SMTP hand-off at a time.

- Nobody gets a lesson twice: `deliveries` is unique per (enrollment, lesson); each delivery
  is written as `sending` before its hand-off, and the outcome of each hand-off is committed
  before the next message is handed over.
- An unsubscribe takes effect at once: each reader's status is read again after the previous
  hand-off is recorded (in the same transaction), so only building the message lies between
  that read and the hand-off; a lesson not yet handed to SMTP is not sent. A worker whose
  lease ran out (a very slow relay) finds in that same read that a reader is another
  worker's now, and leaves them to it.
- The one ambiguous case, a message the SMTP server accepted whose outcome a dying worker
  did not record, is retried under the same Message-ID: at most one such message per dead
  worker, and receivers that collapse duplicate Message-IDs show it once.
- A relay outage releases the rest of the batch without using up an attempt.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Integer, Table, bindparam, insert, select, update
from sqlalchemy.engine import Dialect

from drip.bounces import return_path
from drip.clock import Clock, system_clock
from drip.config import Settings
from drip.dispatch.direct import Direct
from drip.dispatch.plan import HOLD, Plan, Send, Settle, Verdict
from drip.dispatch.report import Outcome, OutcomeStatus, PassReport
from drip.handoff import Unsendable, checked_message
from drip.links import Links
from drip.magnets import magnet_pdf, page_size_for
from drip.mailer import SendError, Transport
from drip.message_ids import new_message_id, sending_domain
from drip.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    Subscriber,
    WorkerHeartbeat,
)
from drip.pace import Pace, backoff
from drip.render import MessageTemplate, Renderer
from drip.schedule import into_window, reader_zone

log = logging.getLogger(__name__)

E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
EVENTS = cast(Table, Event.__table__)
HEARTBEATS = cast(Table, WorkerHeartbeat.__table__)

# What a pass runs for every message, built once with bound parameters: SQLAlchemy finds each
# compiled in its cache, where a statement built per reader costs more than the SQL itself.
STILL_WANTED = (
    select(E.c.status, S.c.suppressed_at, E.c.lease_owner)
    .join(S, S.c.id == E.c.subscriber_id)
    .where(E.c.id == bindparam("p_check", type_=Integer()))
)
MARK_SENT = (
    update(D)
    .where(D.c.id == bindparam("p_delivery"))
    .values(
        status=DeliveryStatus.SENT,
        sent_at=bindparam("p_at", type_=D.c.sent_at.type),
        updated_at=bindparam("p_at", type_=D.c.sent_at.type),
        last_error=None,
        lesson_version=bindparam("p_version"),
        attempts=D.c.attempts + 1,
    )
)
ADVANCE = (
    update(E)
    .where(E.c.id == bindparam("p_enrollment"), E.c.status == EnrollmentStatus.ACTIVE)
    .values(
        next_lesson=bindparam("p_after", type_=E.c.next_lesson.type),
        due_at=bindparam("p_after_due", type_=E.c.due_at.type),
        last_sent_at=bindparam("p_at", type_=E.c.last_sent_at.type),
        attempts=0,
        last_error=None,
        lease_owner=None,
        status=bindparam("p_status", type_=E.c.status.type),
        completed_at=bindparam("p_done_at", type_=E.c.completed_at.type),
    )
)
# On PostgreSQL the three go in one statement, atomic on its own: one round trip, no BEGIN.
RECORD_SENT_AND_CHECK = STILL_WANTED.add_cte(
    MARK_SENT.cte("sent_delivery"), ADVANCE.cte("advanced_enrollment")
)


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
        outcomes = [self._settle(conn, p, now) for p in plans if isinstance(p, Settle)]
        ready = self._prepare(conn, [p for p in plans if isinstance(p, Send)], now)
        conn.commit()
        lanes = max(1, min(self.settings.smtp_connections, len(ready)))
        if lanes == 1:
            sent, relay_down = self._lane(conn, ready, now, transport, progress)
            return outcomes + sent, relay_down

        def run(lane: list[Ready]) -> tuple[list[Outcome], bool]:
            with conn.engine.connect() as lane_conn:
                if lane_conn.dialect.name == "postgresql":
                    lane_conn.exec_driver_sql("SET synchronous_commit TO OFF")
                lane_conn.commit()
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
        enrollment = update(E).where(E.c.id == settle.claimed.enrollment_id)
        if settle.verdict is Verdict.SUPPRESSED:
            conn.execute(
                enrollment.values(status=EnrollmentStatus.SUPPRESSED, due_at=None, lease_owner=None)
            )
        elif settle.verdict is Verdict.HELD:
            conn.execute(
                enrollment.values(
                    due_at=settle.hold_until, lease_owner=None, last_error=settle.reason
                )
            )
        elif settle.verdict is Verdict.COMPLETED:
            conn.execute(
                enrollment.values(
                    status=EnrollmentStatus.COMPLETED,
                    completed_at=now,
                    next_lesson=None,
                    due_at=None,
                    lease_owner=None,
                )
            )
        else:
            # An address SMTP cannot carry without SMTPUTF8 would stop the pass at every
            # attempt: set the reader aside for the operator. An unconfirmed reader stays
            # unconfirmed (and expires); an active one is paused.
            values: dict[str, Any] = {
                "due_at": None,
                "lease_owner": None,
                "last_error": settle.reason,
            }
            if settle.claimed.status == EnrollmentStatus.ACTIVE:
                values.update(status=EnrollmentStatus.PAUSED, paused_reason=settle.reason)
            conn.execute(enrollment.values(**values))
        return settle.outcome()

    def _prepare(self, conn: Connection, sends: list[Send], now: datetime) -> list[Ready]:
        """Build each template and record each lesson's delivery as `sending` before the
        hand-off (the caller commits them all at once)."""
        templates = [self._template(s) for s in sends]
        lessons = [(s, t) for s, t in zip(sends, templates, strict=True) if s.lesson is not None]
        new = [(s, t) for s, t in lessons if s.lesson_key not in s.claimed.earlier]
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
        for s, _ in lessons:
            if s.lesson_key not in s.claimed.earlier:
                continue
            delivery_id, previous, stored = s.claimed.earlier[s.lesson_key]
            ids[s.claimed.enrollment_id] = delivery_id
            mids[s.claimed.enrollment_id] = stored
            note = (
                (
                    "the previous attempt's outcome is unknown (its worker stopped); "
                    "sent again with the same Message-ID"
                )
                if previous == "sending"
                else None
            )
            conn.execute(
                update(D)
                .where(D.c.id == delivery_id)
                .values(
                    status=DeliveryStatus.SENDING,
                    updated_at=now,
                    **({"last_error": note} if note else {}),
                )
            )
        return [
            self._ready(conn, s, t, ids, mids, now) for s, t in zip(sends, templates, strict=True)
        ]

    def _ready(
        self,
        conn: Connection,
        send: Send,
        template: MessageTemplate,
        ids: dict[int, int],
        mids: dict[int, str],
        now: datetime,
    ) -> Ready:
        """The send with its PDF, if it carries one: then the welcome says it is attached."""
        pdf = self._lead_magnet(conn, send, now) if send.attach_magnet else ()
        if pdf and send.lesson is not None:
            template = self.renderer.lesson(send.sequence, send.lesson, attached=True)
        enrollment = send.claimed.enrollment_id
        mid = mids.get(enrollment) or self._confirmation_id(conn, send, template)
        return Ready(send, template, ids.get(enrollment), mid, pdf)

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
            if item.delivery_id is not None:
                conn.execute(
                    update(D)
                    .where(D.c.id == item.delivery_id)
                    .values(status=DeliveryStatus.CANCELLED, updated_at=now)
                )
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
        if send.lesson is None:
            conn.execute(
                update(E)
                .where(E.c.id == claimed.enrollment_id)
                .values(
                    confirmation_sent_at=now,
                    pending_message_id=None,
                    due_at=None,
                    lease_owner=None,
                    attempts=0,
                    last_error=None,
                )
            )
            self._event(conn, item, now, EventKind.CONFIRMATION_SENT, mid)
            conn.commit()
            return send.outcome(OutcomeStatus.SENT), None
        handed_off = now + max(self.clock() - self.pass_started, timedelta())
        return send.outcome(OutcomeStatus.SENT), self._record_sent(
            conn, item, handed_off, following
        )

    def _record_sent(
        self, conn: Connection, item: Ready, handed_off: datetime, following: Ready | None
    ) -> Check | None:
        """Mark the delivery sent at `handed_off` and move the reader on, in one commit (the
        next lesson's delay counts from that moment); in the same transaction, read whether
        the next reader of the batch is still wanted."""
        send = item.send
        done = send.after is None
        params = {
            "p_delivery": item.delivery_id,
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
            else:
                self._mark_sent.run(cursor, params)
                self._advance.run(cursor, params)
                row = self._check.run(cursor, params).fetchone() if following else None
                driver.commit()
        return None if following is None else self._verdict(following, row)

    def _failed(
        self,
        conn: Connection,
        item: Ready,
        now: datetime,
        error: SendError,
    ) -> Outcome:
        send, claimed = item.send, item.send.claimed
        if error.throttled:  # the relay's pace, not this reader's: no attempt used up
            self._release(conn, item, now, f"the relay asked drip to slow down: {error}")
            return send.outcome(
                OutcomeStatus.RETRYING,
                f"{error}; the relay asked drip to slow down",
                relay_down=True,
                throttled=True,
            )
        if not error.charged:  # drip's own side (the outbox's disk): no attempt used up
            log.warning("not sent, the readers wait for the next pass: %s", error)
            self._release(conn, item, now, str(error))
            return send.outcome(OutcomeStatus.RETRYING, str(error), relay_down=True)
        if not error.transient:
            conn.execute(
                update(S)
                .where(S.c.id == claimed.reader.subscriber_id)
                .values(suppressed_at=now, suppressed_reason=str(error))
            )
            conn.execute(
                update(E)
                .where(
                    E.c.subscriber_id == claimed.reader.subscriber_id,
                    E.c.status.in_(
                        [EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING, EnrollmentStatus.PAUSED]
                    ),
                )
                .values(
                    status=EnrollmentStatus.SUPPRESSED,
                    due_at=None,
                    lease_owner=None,
                    last_error=str(error),
                )
            )
            self._mark_delivery(conn, item, now, DeliveryStatus.FAILED, str(error))
            self._event(conn, item, now, EventKind.SUPPRESSED, str(error))
            conn.commit()
            return send.outcome(OutcomeStatus.SUPPRESSED, str(error))
        attempts = claimed.attempts + 1
        if attempts >= self.settings.max_attempts:
            reason = f"gave up after {attempts} attempts: {error}"
            conn.execute(
                update(E)
                .where(E.c.id == claimed.enrollment_id)
                .values(
                    status=EnrollmentStatus.PAUSED,
                    paused_reason=reason,
                    due_at=None,
                    lease_owner=None,
                    attempts=attempts,
                    last_error=str(error),
                )
            )
            self._mark_delivery(conn, item, now, DeliveryStatus.FAILED, str(error))
            conn.commit()
            return send.outcome(OutcomeStatus.FAILED, reason)
        retry_at = retry_time(send, now, backoff(attempts))
        conn.execute(
            update(E)
            .where(E.c.id == claimed.enrollment_id)
            .values(due_at=retry_at, lease_owner=None, attempts=attempts, last_error=str(error))
        )
        self._mark_delivery(conn, item, now, DeliveryStatus.RETRYING, str(error))
        conn.commit()
        return send.outcome(
            OutcomeStatus.RETRYING,
            f"{error}; again at {retry_at:%H:%M}",
            relay_down=error.connection,
        )

    def _message(self, item: Ready, now: datetime) -> bytes:
        """The message for the item's reader; raises Unsendable (drip.handoff)."""
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
        values: dict[str, Any] = {"due_at": None, "lease_owner": None, "last_error": reason}
        if claimed.status == EnrollmentStatus.ACTIVE:
            values.update(status=EnrollmentStatus.PAUSED, paused_reason=reason)
        conn.execute(
            update(E)
            .where(E.c.id == claimed.enrollment_id, E.c.lease_owner == self.worker_id)
            .values(**values)
        )
        self._mark_delivery(conn, item, now, DeliveryStatus.FAILED, reason)
        self._event(conn, item, now, EventKind.NOT_SENT, f"{item.send.lesson_key}: {reason}")
        conn.commit()
        return item.send.outcome(OutcomeStatus.FAILED, reason)

    def _release(
        self,
        conn: Connection,
        item: Ready,
        now: datetime,
        why: str = "not tried: the SMTP relay was unreachable or slowing drip down",
    ) -> None:
        """Put back a reader the pass did not try because the relay is down or asked drip
        to slow down: no attempt used."""
        conn.execute(
            update(E)
            .where(E.c.id == item.send.claimed.enrollment_id)
            .values(due_at=retry_time(item.send, now, backoff(1)), lease_owner=None)
        )
        if item.delivery_id is not None:
            conn.execute(
                update(D)
                .where(D.c.id == item.delivery_id)
                .values(status=DeliveryStatus.RETRYING, updated_at=now, last_error=why[:2000])
            )
        conn.commit()

    def _mark_delivery(
        self, conn: Connection, item: Ready, now: datetime, status: DeliveryStatus, error: str
    ) -> None:
        if item.delivery_id is not None:
            conn.execute(
                update(D)
                .where(D.c.id == item.delivery_id)
                .values(status=status, updated_at=now, last_error=error, attempts=D.c.attempts + 1)
            )

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
