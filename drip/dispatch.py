"""One dispatch pass: take in sign-ups -> claim what is due -> render -> send -> record.

A pass is a function of the database, the content and an instant `now`, so tests and
`drip dispatch --now` can run any moment of a course without waiting for it.

Guarantees, and how they are kept:
- Nobody gets a lesson twice: `deliveries` is unique per (enrollment, lesson), and the
  outcome of each SMTP hand-off is committed before the next message is handed over.
- Several workers on PostgreSQL claim disjoint rows (`FOR UPDATE SKIP LOCKED`); on SQLite a
  file lock lets one worker dispatch at a time and a second one refuses with the reason.
- A claim is a lease: claiming moves `due_at` to the end of the lease, so the readers of a
  worker that dies fall due again by themselves. A worker whose lease ran out (a very slow
  relay) checks before each hand-off that the reader is still its own, so a reader another
  worker claimed meanwhile is left to that worker.
- An unsubscribe takes effect at once: each reader's status is read after the previous
  hand-off is recorded (in the same transaction), so only building the message lies between
  that read and the hand-off; a lesson not yet handed to SMTP is not sent.
- The one ambiguous case, a message the SMTP server accepted whose outcome a dying worker
  did not record, is retried under the same Message-ID: at most one such message per dead
  worker, and receivers that collapse duplicate Message-IDs show it once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Integer, Table, bindparam, insert, select, update
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from drip.bounces import return_path, sending_paused
from drip.config import Settings
from drip.content import ContentStore, Sequence
from drip.db import sqlite_file
from drip.fresh_links import Sent, send_requested
from drip.intake import Intake, take_in, waiting
from drip.links import Links
from drip.magnets import magnet_pdf
from drip.mailer import SendError, Transport
from drip.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    SequenceState,
    Subscriber,
    WorkerHeartbeat,
)
from drip.render import MessageTemplate, Reader, Renderer, message_id
from drip.schedule import into_window, next_due, reader_zone

log = logging.getLogger(__name__)

HOLD = timedelta(minutes=15)  # how long a reader waits when their sequence cannot be read
MAX_BACKOFF = timedelta(hours=6)
PASS_CHECKPOINT_PAGES = 10_000  # SQLite WAL pages (4 KiB) between checkpoints during a pass

E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
EVENTS = cast(Table, Event.__table__)
STATES = cast(Table, SequenceState.__table__)
HEARTBEATS = cast(Table, WorkerHeartbeat.__table__)

# What a pass runs for every message, built once with bound parameters: SQLAlchemy finds each
# compiled in its cache, where a statement built per reader costs more than the SQL itself.
STILL_WANTED = (select(E.c.status, S.c.suppressed_at, E.c.lease_owner)
                .join(S, S.c.id == E.c.subscriber_id)
                .where(E.c.id == bindparam("p_check", type_=Integer())))
MARK_SENT = (update(D).where(D.c.id == bindparam("p_delivery"))
             .values(status=DeliveryStatus.SENT, sent_at=bindparam("p_at", type_=D.c.sent_at.type),
                     updated_at=bindparam("p_at", type_=D.c.sent_at.type), last_error=None,
                     lesson_version=bindparam("p_version"), attempts=D.c.attempts + 1))
ADVANCE = (update(E).where(E.c.id == bindparam("p_enrollment"),
                           E.c.status == EnrollmentStatus.ACTIVE)
           .values(next_lesson=bindparam("p_after", type_=E.c.next_lesson.type),
                   due_at=bindparam("p_after_due", type_=E.c.due_at.type),
                   last_sent_at=bindparam("p_at", type_=E.c.last_sent_at.type), attempts=0,
                   last_error=None, lease_owner=None,
                   status=bindparam("p_status", type_=E.c.status.type),
                   completed_at=bindparam("p_done_at", type_=E.c.completed_at.type)))
# On PostgreSQL the three go in one statement, atomic on its own: one round trip, no BEGIN.
RECORD_SENT_AND_CHECK = STILL_WANTED.add_cte(MARK_SENT.cte("sent_delivery"),
                                             ADVANCE.cte("advanced_enrollment"))


class _Direct:
    """A statement compiled once by SQLAlchemy and run on the driver's own cursor.

    Measured on SQLite, SQLAlchemy's bookkeeping around an execution (about 70 µs) cost more
    than the statement; the statements that run once per message skip it. The SQL and every
    parameter conversion (UTC datetimes included) still come from the compiled statement."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        self.compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = self.compiled.string
        self.order = self.compiled.positiontup  # None for named parameter styles
        self.fixed: dict[str, Any] = {}  # the statement's constants, converted once
        self.variable: list[tuple[str, Callable[[Any], Any] | None]] = []
        for name, bind in self.compiled.binds.items():
            process = bind.type.bind_processor(dialect)
            if bind.required:
                self.variable.append((name, process))
            else:
                value = process(bind.value) if process else bind.value
                self.fixed[name] = str(value) if isinstance(value, str) else value  # no enums

    def run(self, cursor: Any, params: dict[str, Any]) -> Any:
        values = self.fixed.copy()
        for name, process in self.variable:
            values[name] = params[name] if process is None else process(params[name])
        cursor.execute(self.sql, values if self.order is None else
                       [values[name] for name in self.order])
        return cursor


SEND, LEFT, TAKEN = "send", "left", "taken"  # what the check before a hand-off found


class DispatchLocked(Exception):
    """Another worker holds the SQLite dispatch lock."""


@dataclass(frozen=True)
class Outcome:
    enrollment_id: int
    email: str
    sequence: str
    lesson: str
    status: str  # sent, retrying, failed, suppressed, completed, held, skipped, would-send
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.status:<10} {self.email} {self.sequence}/{self.lesson}{detail}"


@dataclass
class PassReport:
    now: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    intake: Intake = field(default_factory=Intake)
    waiting: int = 0  # sign-ups a dry run found waiting to be taken in
    fresh_links: Sent = field(default_factory=Sent)  # download links readers asked for

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    def summary(self) -> str:
        statuses = ("sent", "would-send", "retrying", "failed", "suppressed", "completed", "held")
        parts = [f"{self.count(s)} {s}" for s in statuses if self.count(s)]
        if self.intake.taken or self.intake.held or self.intake.interrupted:
            parts.insert(0, self.intake.summary())
        if self.waiting:
            parts.insert(0, f"{self.waiting} sign-ups waiting to be taken in")
        if self.fresh_links.sent or self.fresh_links.failed:
            parts.append(f"{self.fresh_links.sent} fresh links sent"
                         + (f", {self.fresh_links.failed} not" if self.fresh_links.failed else ""))
        return f"dispatch as of {self.now.isoformat()}: " + (", ".join(parts) or "nothing due")


@dataclass
class _Item:
    """One claimed enrollment on its way through the pass."""

    enrollment_id: int
    status: str
    sequence_slug: str
    attempts: int
    reader: Reader | None = None
    timezone: str = ""
    suppressed: bool = False
    sent: set[str] = field(default_factory=set)
    existing: dict[str, tuple[int, str]] = field(default_factory=dict)  # lesson -> (id, status)
    delivery_id: int | None = None
    lesson_key: str = "confirm"
    immediate: bool = True  # a lesson with delay 0 is not held for the send window
    template: MessageTemplate | None = None
    after: str | None = None  # the lesson following this one, if any
    after_due: datetime | None = None
    attachments: tuple[tuple[str, bytes], ...] = ()  # the lead magnet, on the welcome lesson


def backoff(attempts: int) -> timedelta:
    """1, 2, 4 ... minutes after each transient failure, capped at six hours."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    def __init__(self, engine: Engine, settings: Settings, content: ContentStore,
                 renderer: Renderer, links: Links, transport: Callable[[], Transport],
                 worker_id: str | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.content = content
        self.renderer = renderer
        self.links = links
        self.transport = transport
        self.worker_id = worker_id or new_worker_id()
        self.started_at: datetime | None = None
        self.postgres = engine.dialect.name == "postgresql"
        self._pass_clock = time.monotonic()  # when the current pass began, for leases
        dialect = engine.dialect
        self._record_one = _Direct(RECORD_SENT_AND_CHECK, dialect) if self.postgres else None
        self._mark_sent = _Direct(MARK_SENT, dialect)
        self._advance = _Direct(ADVANCE, dialect)
        self._check = _Direct(STILL_WANTED, dialect)

    # -- the pass ---------------------------------------------------------------------------

    def run_pass(self, now: datetime, dry_run: bool = False,
                 progress: Callable[[Outcome], None] | None = None) -> PassReport:
        """Take in the waiting sign-ups, then send everything due at `now`, batch by batch,
        until nothing due is left."""
        report = PassReport(now)
        if dry_run:
            with Session(self.engine) as session:
                report.waiting = waiting(session)
            report.outcomes.extend(self.preview(now))
            return report
        self.started_at = self.started_at or now
        self._pass_clock = time.monotonic()
        with Session(self.engine, expire_on_commit=False) as session:
            report.intake = take_in(session, self.content.library())
        with Session(self.engine) as session:
            report.fresh_links = send_requested(session, self.content.library(), self.renderer,
                                                self.links, self.transport, now)
        with self.engine.connect() as conn:
            sqlite, checkpoint_pages = self.engine.dialect.name == "sqlite", 0
            if self.postgres:
                conn.exec_driver_sql("SET synchronous_commit TO OFF")
            elif sqlite:
                # SQLite checkpoints the WAL, with a sync to disk, each time it reaches 1,000
                # pages: every ~150 messages of a pass. Checkpoint less often, and at the end.
                checkpoint_pages = int(
                    conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() or 1000)
                conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={PASS_CHECKPOINT_PAGES}")
            try:
                self._expire_unconfirmed(conn, now)
                while True:
                    items = self._claim(conn, now)
                    if not items:
                        break
                    outcomes, relay_down = self._process(conn, items, now, progress)
                    report.outcomes.extend(outcomes)
                    if relay_down or len(items) < self.settings.batch_size:
                        break
                self._heartbeat(conn, now, report)
            finally:
                if self.postgres:
                    conn.exec_driver_sql("RESET synchronous_commit")
                elif sqlite:
                    conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={checkpoint_pages}")
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        return report

    def _expire_unconfirmed(self, conn: Connection, now: datetime) -> None:
        cutoff = now - timedelta(days=self.settings.confirm_days)
        conn.execute(update(E).where(E.c.status == EnrollmentStatus.PENDING,
                                     E.c.created_at < cutoff)
                     .values(status=EnrollmentStatus.EXPIRED, due_at=None))
        conn.commit()

    def _paused_sequences(self, conn: Connection) -> list[str]:
        return list(conn.scalars(select(STATES.c.sequence).where(STATES.c.paused.is_(True))))

    def _due_query(self, conn: Connection, now: datetime) -> Any:
        query = (select(E.c.id)
                 .where(E.c.status.in_([EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING]),
                        E.c.due_at <= now)
                 .order_by(E.c.due_at).limit(self.settings.batch_size))
        paused = self._paused_sequences(conn)
        if paused:
            query = query.where(E.c.sequence.not_in(paused))
        return query

    def _claim(self, conn: Connection, now: datetime) -> list[_Item]:
        """Take up to a batch of due enrollments: mine until the lease ends."""
        if sending_paused(conn):  # a guardrail stopped all sending (drip.bounces)
            return []
        due = self._due_query(conn, now)
        if self.postgres:
            due = due.with_for_update(skip_locked=True)
        # The lease runs from the claim, not from the pass's `now`: a long pass would
        # otherwise claim its last batches with leases already over.
        elapsed = timedelta(seconds=time.monotonic() - self._pass_clock)
        lease_end = now + elapsed + timedelta(seconds=self.settings.lease_seconds)
        rows = conn.execute(
            update(E).where(E.c.id.in_(due.scalar_subquery()))
            .values(due_at=lease_end, lease_owner=self.worker_id)
            .returning(E.c.id, E.c.status, E.c.sequence, E.c.attempts, E.c.subscriber_id)
        ).all()
        conn.commit()
        if not rows:
            return []
        items = {row.id: _Item(row.id, row.status, row.sequence, row.attempts) for row in rows}
        subscriber_of = {row.id: row.subscriber_id for row in rows}
        people = {r.id: r for r in conn.execute(
            select(S.c.id, S.c.email, S.c.first_name, S.c.timezone, S.c.suppressed_at)
            .where(S.c.id.in_(set(subscriber_of.values()))))}
        for enrollment_id, item in items.items():
            person = people[subscriber_of[enrollment_id]]
            item.reader = Reader(person.email, person.first_name, person.id, enrollment_id)
            item.timezone = person.timezone
            item.suppressed = person.suppressed_at is not None
        for row in conn.execute(select(D.c.id, D.c.enrollment_id, D.c.lesson, D.c.status)
                                .where(D.c.enrollment_id.in_(list(items)))):
            item = items[row.enrollment_id]
            if row.status == DeliveryStatus.SENT:
                item.sent.add(row.lesson)
            else:
                item.existing[row.lesson] = (row.id, row.status)
        conn.commit()
        return sorted(items.values(), key=lambda i: i.enrollment_id)

    # -- deciding what each claimed reader gets ---------------------------------------------

    def _plan(self, conn: Connection, items: list[_Item], now: datetime,
              ) -> tuple[list[_Item], list[Outcome]]:
        """Pick each reader's message; settle the ones that get none (done, held, suppressed)."""
        library = self.content.library()
        ready: list[_Item] = []
        outcomes: list[Outcome] = []
        for item in items:
            assert item.reader is not None
            sequence = library.get(item.sequence_slug)
            if item.suppressed:
                conn.execute(update(E).where(E.c.id == item.enrollment_id).values(
                    status=EnrollmentStatus.SUPPRESSED, due_at=None, lease_owner=None))
                outcomes.append(self._outcome(item, "suppressed", "address is suppressed"))
                continue
            if sequence is None:
                reason = (library.broken_reason(item.sequence_slug)
                          or f"sequence {item.sequence_slug!r} does not exist in "
                             f"{self.settings.sequences_dir}")
                conn.execute(update(E).where(E.c.id == item.enrollment_id).values(
                    due_at=now + HOLD, lease_owner=None, last_error=reason))
                outcomes.append(self._outcome(item, "held", reason))
                continue
            if not item.reader.email.isascii():
                outcomes.append(self._unsendable(conn, item))
                continue
            if item.status == EnrollmentStatus.PENDING:
                item.template = self._confirmation(sequence)
                ready.append(item)
                continue
            lesson = sequence.next_lesson(item.sent)
            if lesson is None:
                conn.execute(update(E).where(E.c.id == item.enrollment_id).values(
                    status=EnrollmentStatus.COMPLETED, completed_at=now, next_lesson=None,
                    due_at=None, lease_owner=None))
                outcomes.append(self._outcome(item, "completed"))
                continue
            item.lesson_key = lesson.key
            item.immediate = lesson.delay.immediate
            item.template = self.renderer.lesson(sequence, lesson)
            if lesson is sequence.lessons[0] and sequence.lead_magnet is not None \
                    and sequence.lead_magnet.attach:
                item.attachments = self._lead_magnet(conn, sequence, item, now)
            following = sequence.next_lesson(item.sent | {lesson.key})
            if following is not None:
                item.after = following.key
                item.after_due = next_due(now, following.delay, sequence.window,
                                          reader_zone(item.timezone, sequence.timezone))
            ready.append(item)
        self._write_ahead(conn, [i for i in ready if i.status == EnrollmentStatus.ACTIVE], now)
        conn.commit()
        return ready, outcomes

    def _lead_magnet(self, conn: Connection, sequence: Sequence, item: _Item, now: datetime,
                     ) -> tuple[tuple[str, bytes], ...]:
        """The reader's PDF to attach to the welcome lesson (`attach: true`). The lesson
        carries the download link too, so a PDF that cannot be typeset does not hold the
        lesson back: it goes without the attachment, and the log says why."""
        assert item.reader is not None
        attributes = conn.scalar(select(S.c.attributes).where(S.c.id == item.reader.subscriber_id))
        try:
            pdf = magnet_pdf(self.settings, sequence, dict(attributes or {}), today=now.date())
        except Exception:
            log.exception("lead magnet of %s not attached for enrollment %s (the lesson's "
                          "download link still works)", sequence.slug, item.enrollment_id)
            return ()
        return ((f"{sequence.slug}.pdf", pdf),)

    def _unsendable(self, conn: Connection, item: _Item) -> Outcome:
        """An address SMTP cannot carry without SMTPUTF8 (which drip does not use) would stop
        the pass at every attempt: set the reader aside, with the reason, for the operator.
        An unconfirmed reader stays unconfirmed (and expires); an active one is paused."""
        assert item.reader is not None
        reason = (f"{item.reader.email} has non-ASCII characters; sending to it needs "
                  "SMTPUTF8, which drip does not use: correct the address and resume")
        values: dict[str, Any] = {"due_at": None, "lease_owner": None, "last_error": reason}
        if item.status == EnrollmentStatus.ACTIVE:
            values.update(status=EnrollmentStatus.PAUSED, paused_reason=reason)
        conn.execute(update(E).where(E.c.id == item.enrollment_id).values(**values))
        return self._outcome(item, "failed", reason)

    def _write_ahead(self, conn: Connection, items: list[_Item], now: datetime) -> None:
        """Record each delivery as `sending` before the SMTP hand-off, in one commit."""
        new = [i for i in items if i.lesson_key not in i.existing]
        again = [i for i in items if i.lesson_key in i.existing]
        if new:
            rows = conn.execute(insert(D).returning(D.c.id, D.c.enrollment_id,
                                                   sort_by_parameter_order=True), [
                {"enrollment_id": i.enrollment_id, "lesson": i.lesson_key,
                 "lesson_version": i.template.version if i.template else "",
                 "status": DeliveryStatus.SENDING, "attempts": 0,
                 "message_id": message_id(i.enrollment_id, i.lesson_key, self.renderer.domain),
                 "created_at": now, "updated_at": now} for i in new
            ]).all()
            for item, row in zip(new, rows, strict=True):
                item.delivery_id = row.id
        for item in again:
            item.delivery_id, previous = item.existing[item.lesson_key]
            note = ("the previous attempt's outcome is unknown (its worker stopped); "
                    "sent again with the same Message-ID") if previous == "sending" else None
            conn.execute(update(D).where(D.c.id == item.delivery_id).values(
                status=DeliveryStatus.SENDING, updated_at=now,
                **({"last_error": note} if note else {})))

    def _confirmation(self, sequence: Sequence) -> MessageTemplate:
        return self.renderer.confirmation(sequence)

    # -- sending and recording ----------------------------------------------------------------

    def _process(self, conn: Connection, items: list[_Item], now: datetime,
                 progress: Callable[[Outcome], None] | None) -> tuple[list[Outcome], bool]:
        ready, outcomes = self._plan(conn, items, now)
        relay_down = False
        verdict: str | None = None  # the next reader's, when recording already read it
        with self.transport() as transport:
            for index, item in enumerate(ready):
                if relay_down:
                    self._release(conn, item, now)
                    continue
                following = ready[index + 1] if index + 1 < len(ready) else None
                if verdict is None:
                    verdict = self._still_wanted(conn, item)
                outcome, verdict = self._send_one(conn, transport, item, now, verdict, following)
                outcomes.append(outcome)
                if progress:
                    progress(outcome)
                    verdict = None  # whatever the callback took (or did), read it again
                relay_down = outcome.status == "retrying" and outcome.detail.startswith("relay:")
        return outcomes, relay_down

    def _still_wanted(self, conn: Connection, item: _Item) -> str:
        """Checked right before each hand-off: an unsubscribe takes effect at once, and a
        reader another worker claimed once this one's lease ran out is left to that worker.

        Usually the check rides on the transaction that records the previous message (see
        `_record_sent`): between it and the hand-off lie only that commit and building the
        message, as when it ran on its own. A `progress` callback in between makes the
        pass read the status again, here, after the callback."""
        row = conn.execute(STILL_WANTED, {"p_check": item.enrollment_id}).first()
        conn.rollback()
        return self._verdict(item, row)

    def _verdict(self, item: _Item, row: Any) -> str:
        """SEND, LEFT or TAKEN, from (status, suppressed_at, lease_owner) of the item's
        enrollment, or None if it is gone."""
        if row is not None and row[2] != self.worker_id:
            return TAKEN  # checked first: the delivery row is no longer this worker's to touch
        if row is None or row[0] != item.status or row[1] is not None:
            return LEFT
        return SEND

    def _send_one(self, conn: Connection, transport: Transport, item: _Item, now: datetime,
                  verdict: str, following: _Item | None) -> tuple[Outcome, str | None]:
        """Hand one message over and record the outcome; also gives the verdict on
        `following` when recording could read it in the same transaction (else None)."""
        assert item.reader is not None and item.template is not None
        if verdict == TAKEN:  # the delivery row is the other worker's now: leave it be
            return self._outcome(item, "skipped", "claimed by another worker after this "
                                 "one's lease ran out"), None
        if verdict == LEFT:
            if item.delivery_id is not None:
                conn.execute(update(D).where(D.c.id == item.delivery_id).values(
                    status=DeliveryStatus.CANCELLED, updated_at=now))
            conn.commit()
            return self._outcome(item, "skipped", "left before the hand-off"), None
        template = item.template
        mid = message_id(item.enrollment_id, item.lesson_key, self.renderer.domain)
        message = template.build(item.reader, self.links, mid, now, attachments=item.attachments)
        try:
            transport.send(return_path(self.settings, template.sender, item.delivery_id,
                                       item.enrollment_id), item.reader.email, message,
                           name=f"{now:%Y%m%dT%H%M%S}-{item.enrollment_id}-{item.lesson_key}")
        except SendError as error:
            return self._failed(conn, item, now, error), None
        if item.status == EnrollmentStatus.PENDING:
            conn.execute(update(E).where(E.c.id == item.enrollment_id).values(
                confirmation_sent_at=now, due_at=None, lease_owner=None, attempts=0,
                last_error=None))
            self._event(conn, item, now, "confirmation_sent", mid)
            conn.commit()
            return self._outcome(item, "sent"), None
        return self._outcome(item, "sent"), self._record_sent(conn, item, now, following)

    def _record_sent(self, conn: Connection, item: _Item, now: datetime,
                     following: _Item | None) -> str | None:
        """Mark the delivery sent and move the reader on, in one commit; in the same
        transaction, read whether the next reader of the batch is still wanted."""
        assert item.template is not None
        done = item.after is None
        params = {"p_delivery": item.delivery_id, "p_at": now,
                  "p_version": item.template.version, "p_enrollment": item.enrollment_id,
                  "p_after": item.after, "p_after_due": item.after_due,
                  "p_status": EnrollmentStatus.COMPLETED if done else EnrollmentStatus.ACTIVE,
                  "p_done_at": now if done else None,
                  "p_check": following.enrollment_id if following else 0}
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

    def _failed(self, conn: Connection, item: _Item, now: datetime,
                error: SendError) -> Outcome:
        assert item.reader is not None
        if not error.transient:
            conn.execute(update(S).where(S.c.id == item.reader.subscriber_id).values(
                suppressed_at=now, suppressed_reason=str(error)))
            conn.execute(update(E).where(
                E.c.subscriber_id == item.reader.subscriber_id,
                E.c.status.in_([EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING,
                                EnrollmentStatus.PAUSED]))
                .values(status=EnrollmentStatus.SUPPRESSED, due_at=None, lease_owner=None,
                        last_error=str(error)))
            self._mark_delivery(conn, item, now, DeliveryStatus.FAILED, str(error))
            self._event(conn, item, now, "suppressed", str(error))
            conn.commit()
            return self._outcome(item, "suppressed", str(error))
        attempts = item.attempts + 1
        if attempts >= self.settings.max_attempts:
            reason = f"gave up after {attempts} attempts: {error}"
            conn.execute(update(E).where(E.c.id == item.enrollment_id).values(
                status=EnrollmentStatus.PAUSED, paused_reason=reason, due_at=None,
                lease_owner=None, attempts=attempts, last_error=str(error)))
            self._mark_delivery(conn, item, now, DeliveryStatus.FAILED, str(error))
            conn.commit()
            return self._outcome(item, "failed", reason)
        retry_at = self._retry_time(item, now, backoff(attempts))
        conn.execute(update(E).where(E.c.id == item.enrollment_id).values(
            due_at=retry_at, lease_owner=None, attempts=attempts, last_error=str(error)))
        self._mark_delivery(conn, item, now, DeliveryStatus.RETRYING, str(error))
        conn.commit()
        prefix = "relay: " if error.connection else ""
        return self._outcome(item, "retrying", f"{prefix}{error}; again at {retry_at:%H:%M}")

    def _release(self, conn: Connection, item: _Item, now: datetime) -> None:
        """Put back a reader the pass did not try because the relay is down: no attempt used."""
        conn.execute(update(E).where(E.c.id == item.enrollment_id).values(
            due_at=self._retry_time(item, now, backoff(1)), lease_owner=None))
        if item.delivery_id is not None:
            conn.execute(update(D).where(D.c.id == item.delivery_id).values(
                status=DeliveryStatus.RETRYING, updated_at=now,
                last_error="not tried: the SMTP relay was unreachable"))
        conn.commit()

    def _retry_time(self, item: _Item, now: datetime, wait: timedelta) -> datetime:
        sequence = self.content.library().get(item.sequence_slug)
        if sequence is None or item.immediate:
            return now + wait
        return into_window(now + wait, sequence.window,
                           reader_zone(item.timezone, sequence.timezone))

    def _mark_delivery(self, conn: Connection, item: _Item, now: datetime, status: str,
                       error: str) -> None:
        if item.delivery_id is not None:
            conn.execute(update(D).where(D.c.id == item.delivery_id).values(
                status=status, updated_at=now, last_error=error, attempts=D.c.attempts + 1))

    def _event(self, conn: Connection, item: _Item, now: datetime, kind: str,
               detail: str) -> None:
        assert item.reader is not None
        conn.execute(insert(EVENTS).values(
            subscriber_id=item.reader.subscriber_id, enrollment_id=item.enrollment_id,
            kind=kind, at=now, detail=detail))

    def _outcome(self, item: _Item, status: str, detail: str = "") -> Outcome:
        assert item.reader is not None
        return Outcome(item.enrollment_id, item.reader.email, item.sequence_slug,
                       item.lesson_key, status, detail)

    def _heartbeat(self, conn: Connection, now: datetime, report: PassReport) -> None:
        table = HEARTBEATS
        values = {"last_pass_at": now, "last_pass_sent": report.count("sent"),
                  "last_pass_failed": report.count("failed") + report.count("suppressed")}
        changed = conn.execute(update(table).where(table.c.worker == self.worker_id)
                               .values(**values)).rowcount
        if not changed:
            conn.execute(insert(table).values(worker=self.worker_id,
                                              started_at=self.started_at or now, **values))
        conn.commit()

    # -- dry run ------------------------------------------------------------------------------

    def preview(self, now: datetime) -> Iterator[Outcome]:
        """What a pass at `now` would send, changing nothing (`drip dispatch --dry-run`)."""
        library = self.content.library()
        with self.engine.connect() as conn:
            ids = list(conn.scalars(self._due_query(conn, now).limit(None)))
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                rows = conn.execute(
                    select(E.c.id, E.c.status, E.c.sequence, S.c.email)
                    .join(S, S.c.id == E.c.subscriber_id).where(E.c.id.in_(chunk))).all()
                sent: dict[int, set[str]] = {}
                for d in conn.execute(select(D.c.enrollment_id, D.c.lesson).where(
                        D.c.enrollment_id.in_(chunk), D.c.status == DeliveryStatus.SENT)):
                    sent.setdefault(d.enrollment_id, set()).add(d.lesson)
                for row in rows:
                    sequence = library.get(row.sequence)
                    if row.status == EnrollmentStatus.PENDING:
                        yield Outcome(row.id, row.email, row.sequence, "confirm", "would-send")
                        continue
                    lesson = sequence.next_lesson(sent.get(row.id, set())) if sequence else None
                    yield Outcome(row.id, row.email, row.sequence,
                                  lesson.key if lesson else "-",
                                  "would-send" if lesson else "held",
                                  "" if lesson else "no readable lesson")


@contextmanager
def dispatch_lock(engine: Engine) -> Iterator[None]:
    """On SQLite, one dispatching process at a time; PostgreSQL needs no lock (SKIP LOCKED)."""
    database = sqlite_file(engine)
    if database is None:
        yield
        return
    with Path(f"{database}.dispatch.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise DispatchLocked(
                f"another drip worker (pid {holder}) is already dispatching from {database}: "
                "SQLite allows one worker at a time. Stop it, or use PostgreSQL "
                "(DRIP_DATABASE_URL) to run several workers.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield

