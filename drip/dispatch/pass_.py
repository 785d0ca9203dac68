"""One dispatch pass: take in sign-ups -> claim what is due -> plan -> send and record.

A pass is a function of the database, the content and an instant `now`, so tests and
`drip dispatch --now` can run any moment of a course without waiting for it. The dry run is
the same claim query and the same plan, with nothing leased, sent or written.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from drip.audience.engagement import sweep
from drip.audience.intake import take_in, waiting
from drip.content.sequences import Library
from drip.content.store import ContentStore
from drip.core.clock import Clock, system_clock
from drip.core.config import Settings
from drip.core.skew import ClockWatch
from drip.deliverability.sending_pause import sending_paused
from drip.dispatch.broadcast_copies import BroadcastCopies
from drip.dispatch.caps import LOOK_BACK, Caps
from drip.dispatch.chaining import chain
from drip.dispatch.claim import Claimed, expire_unconfirmed, lease, peek, resume_held
from drip.dispatch.claim_ahead import ClaimsAhead, items_ahead, put_back_lessons
from drip.dispatch.fresh_links import FreshLinks
from drip.dispatch.lesson_caps import held_outcome, hold_over_cap, split_over_cap
from drip.dispatch.offers import Offers
from drip.dispatch.plan import Send, plan
from drip.dispatch.producers import Producer
from drip.dispatch.reminders import Reminders, queue_reminders
from drip.dispatch.repermission import Questions, queue_questions
from drip.dispatch.report import Outcome, OutcomeStatus, PassReport
from drip.dispatch.send import Recorder
from drip.dispatch.sender import Run, Sender
from drip.dispatch.still_wanted import StillWanted, queue_still_wanted
from drip.mail.links import Links
from drip.mail.pace import Pace
from drip.mail.render import Renderer
from drip.mail.sessions import Sessions
from drip.mail.transports import Transport

PASS_CHECKPOINT_PAGES = 10_000  # SQLite WAL pages (4 KiB) between checkpoints during a pass
REST = timedelta(seconds=30)  # the first rest after the relay asks drip to slow down
MAX_REST = timedelta(minutes=10)
log = logging.getLogger(__name__)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        content: ContentStore,
        renderer: Renderer,
        links: Links,
        transport: Callable[[], Transport],
        worker_id: str | None = None,
        clock: Clock = system_clock,
        pace: Pace | None = None,
    ) -> None:
        """`pace`: the shared send budget (by default DRIP_SEND_RATE's, if set); every kind
        of message takes its slots from it: lessons and confirmations through the recorder,
        the others through the one sender (drip.dispatch.sender) their producers feed."""
        self.engine = engine
        self.clock = clock  # the real time, for the heartbeat: a pass may run for another
        self.settings = settings
        self.content = content
        self.renderer = renderer
        self.links = links
        self.transport = transport
        self.worker_id = worker_id or new_worker_id()
        self.started_at: datetime | None = None
        self.postgres = engine.dialect.name == "postgresql"
        self.pace = pace or (Pace(engine, settings.send_rate) if settings.send_rate else None)
        self.recorder = Recorder(
            engine.dialect, settings, renderer, links, self.worker_id, self.pace, clock
        )
        self.sender = Sender(settings, renderer, links, self.worker_id, self.pace)
        self.caps = Caps.of(settings)  # each reader's daily and weekly caps
        self.rest = timedelta()  # how long the relay last asked drip to wait
        self.rest_until: datetime | None = None
        self.clock_watch = ClockWatch()
        self._held_checked: Library | None = None  # the content readers were last resumed for

    def run_pass(
        self,
        now: datetime,
        dry_run: bool = False,
        progress: Callable[[Outcome], None] | None = None,
    ) -> PassReport:
        """Take in the waiting sign-ups, then send everything due at `now`, batch by batch,
        until nothing due is left."""
        report = PassReport(now)
        if dry_run:
            library = self.content.library()  # one reading, as the real pass has
            with Session(self.engine) as session:
                report.waiting = waiting(session)
                before, after = self._would_send_beside(session, library, now)
                session.rollback()  # the offers it queued to list them
            report.outcomes.extend(before)
            report.outcomes.extend(self.preview(library, now))
            report.outcomes.extend(after)
            return report
        self.started_at = self.started_at or self.clock()
        self.sender.pass_started = time.monotonic()  # each claim's lease runs from it
        self.recorder.pass_started = self.clock()
        # One reading of the content for the whole pass: every reader of it gets the same text,
        # whatever an author saves meanwhile (the next pass reads the new version).
        library = self.content.library()
        with Session(self.engine, expire_on_commit=False) as session:
            report.intake = take_in(session, library)
            sweep(session, library, now)  # engaged, quiet, gone: before anything is sent
            paused = sending_paused(session)  # a bounce or complaint guardrail stopped it
        # One set of SMTP sessions for the whole pass, kept from one batch to the next.
        with closing(Sessions(self.transport)) as sessions:
            self._send(report, library, now, progress, paused, sessions)
        return report

    def _send(
        self,
        report: PassReport,
        library: Library,
        now: datetime,
        progress: Callable[[Outcome], None] | None,
        paused: str | None,
        sessions: Sessions,
    ) -> None:
        """Offers and fresh links, then the lessons, then the broadcasts (none of the first
        and last while a guardrail has sending `paused`)."""
        if not paused and not self._resting(now):
            self._before_lessons(report, library, now, progress, sessions)
        with self.engine.connect() as conn:
            checkpoint_pages = self._tune(conn)
            try:
                expire_unconfirmed(conn, now, self.settings.confirm_days)
                self._resume_held(conn, library, now)
                self._send_lessons(conn, library, now, report, progress, sessions)
                if not paused and not self._resting(now):  # lessons first, then broadcasts
                    self._broadcasts(conn, library, now, report, progress, sessions)
                # The heartbeat says when a pass really ran: one run `--now` for a simulated
                # instant must not tell /healthz the last pass is in the future.
                started = self.started_at or self.clock()  # set as the pass began
                self.recorder.heartbeat(conn, self.clock(), started, report)
            except BaseException:
                # The pass failed, perhaps because its connection died: restoring the
                # settings on that connection would fail too and hide the real error.
                try:
                    self._restore(conn, checkpoint_pages)
                except Exception as error:  # the pass's own error goes up
                    log.warning("after a failed pass, its connection settings stay: %s", error)
                raise
            self._restore(conn, checkpoint_pages)

    def _send_lessons(
        self,
        conn: Connection,
        library: Library,
        now: datetime,
        report: PassReport,
        progress: Callable[[Outcome], None] | None,
        sessions: Sessions,
    ) -> None:
        """Claim, plan and send batch by batch until nobody due is left (or the relay rests);
        on PostgreSQL each batch is claimed while the one before it is sent."""

        def claim(on: Connection) -> list[Claimed]:
            return lease(
                on,
                now,
                worker_id=self.worker_id,
                batch_size=self.settings.batch,
                skip_locked=self.postgres,
                lease_end=self.sender.lease_from(now).until,  # the one lease every kind takes
                handed_since=now - LOOK_BACK,  # for the caps, beside the claim
            )

        batches = ClaimsAhead(
            self.engine,
            claim,
            put_back_lessons(self.worker_id, now),
            ahead=self.postgres,
            batch_size=self.settings.batch,
        )
        sent_to: set[int] = set()  # the readers of the batch before
        with batches:
            while self.rest_until is None or now >= self.rest_until:
                claimed = batches.take(conn)
                if claimed is None:
                    claimed = claim(conn)
                if not claimed:
                    break
                batches.after(claimed)
                folder = self.settings.sequences_dir
                plans = [plan(c, library, now, sequences_dir=folder) for c in claimed]
                # Lessons over their reader's cap wait for the reader's next window. The
                # claim read what each reader was handed, perhaps while the batch before
                # was sent: its readers are read again.
                plans, waiting = hold_over_cap(
                    conn, plans, now, self.caps, self.worker_id, stale=sent_to
                )
                sent_to = {c.reader.subscriber_id for c in claimed}
                self._report(report, waiting, progress)
                outcomes, relay_down = self.recorder.carry_out(conn, plans, now, sessions, progress)
                report.outcomes.extend(outcomes)
                self._pace_the_relay(outcomes, now)
                if relay_down or len(claimed) < self.settings.batch:
                    break

    def _before_lessons(
        self,
        report: PassReport,
        library: Library,
        now: datetime,
        progress: Callable[[Outcome], None] | None,
        sessions: Sessions,
    ) -> None:
        """`on_complete` carried out (offers queued), then the fresh links readers wait
        for and the offers due in their windows, through the one sender."""
        with Session(self.engine) as session:
            report.chained = chain(session, library, now)
            queue_still_wanted(session, library, now)
            queue_reminders(session, library, now, self.settings.confirm_days)
            queue_questions(session, library, now)  # "Still want these?" to quiet readers
            for producer in self._before(library):
                run = self.sender.run(session, producer, now, sessions)
                if self._ran(report, run, now, progress):
                    break

    def _broadcasts(
        self,
        conn: Connection,
        library: Library,
        now: datetime,
        report: PassReport,
        progress: Callable[[Outcome], None] | None,
        sessions: Sessions,
    ) -> None:
        """The broadcast copies due, after the lessons, a batch at a time: between two
        batches the lessons fallen due meanwhile go first, so a long broadcast never holds
        a reader's next lesson back by more than one batch."""
        copies = BroadcastCopies(library, self.renderer, self.links)
        ahead = items_ahead(
            self.engine,
            copies,
            now,
            lambda: self.sender.lease_from(now),
            batch_size=self.settings.batch,
            worker_id=self.worker_id,
        )
        with Session(self.engine) as session, ahead:
            while True:
                run = self.sender.run(session, copies, now, sessions, batches=1, ahead=ahead)
                if self._ran(report, run, now, progress) or not run.more:
                    return
                later = now + timedelta(seconds=time.monotonic() - self.sender.pass_started)
                self._send_lessons(conn, library, later, report, progress, sessions)
                if self._resting(now):
                    return

    def _before(self, library: Library) -> list[Producer]:
        return [
            FreshLinks(library, self.renderer),
            Offers(library, self.renderer),
            StillWanted(library, self.renderer),
            Reminders(library, self.renderer),
            Questions(library, self.renderer, self.links),
        ]

    def _ran(
        self,
        report: PassReport,
        run: Run,
        now: datetime,
        progress: Callable[[Outcome], None] | None,
    ) -> bool:
        """Report a producer's run; True if the relay stopped it (and rest if it asked)."""
        self._report(report, run.outcomes, progress)
        if run.throttled:
            self._rest(now)
        return run.stopped

    @staticmethod
    def _report(
        report: PassReport, outcomes: list[Outcome], progress: Callable[[Outcome], None] | None
    ) -> None:
        report.outcomes.extend(outcomes)
        for outcome in outcomes if progress else ():
            assert progress is not None
            progress(outcome)

    def _would_send_beside(
        self, session: Session, library: Library, now: datetime
    ) -> tuple[list[Outcome], list[Outcome]]:
        """The other kinds a pass at `now` would send, by the one sender's own test on the
        producers' own rows: (fresh links and offers, which go before the lessons;
        broadcast copies, which go after). The offers `chain` would queue are queued in
        `session`, for the caller to roll back. None while a guardrail or the relay's rest
        stops them."""
        if sending_paused(session) or self._resting(now):
            return [], []
        chain(session, library, now, dry_run=True)
        queue_still_wanted(session, library, now, dry_run=True)
        queue_reminders(session, library, now, self.settings.confirm_days, dry_run=True)
        queue_questions(session, library, now, dry_run=True)
        before = [
            outcome
            for producer in self._before(library)
            for outcome in self.sender.would_send(session, producer, now)
        ]
        copies = BroadcastCopies(library, self.renderer, self.links)
        return before, self.sender.would_send(session, copies, now)

    def _tune(self, conn: Connection) -> int:
        """Settings of the pass's own connection; SQLite's autocheckpoint before, to restore."""
        if self.engine.dialect.name != "sqlite":
            return 0
        # SQLite checkpoints the WAL, with a sync to disk, each time it reaches 1,000
        # pages: every ~150 messages of a pass. Checkpoint less often, and at the end.
        pages = int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() or 1000)
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={PASS_CHECKPOINT_PAGES}")
        return pages

    def _resume_held(self, conn: Connection, library: Library, now: datetime) -> None:
        """Readers held for their course's content go on in the first pass after it changed
        (a folder restored), not at the end of their hold: only the courses that now load
        whole and differ from what the last pass read are looked at."""
        before, self._held_checked = self._held_checked, library
        if before is None or before is library:
            return
        changed = [
            slug
            for slug, sequence in library.sequences.items()
            if before.sequences.get(slug) != sequence
        ]
        resume_held(conn, changed, now)

    def check_clock(self) -> timedelta | None:
        """This worker's clock against the database's (PostgreSQL); the log says when it is
        off by more than a few seconds (drip.core.skew). None on SQLite."""
        with self.engine.connect() as conn:
            return self.clock_watch.check(conn, self.clock)

    def _restore(self, conn: Connection, checkpoint_pages: int) -> None:
        """Put the pass's connection settings back before the pool reuses the connection."""
        if self.engine.dialect.name == "sqlite":
            conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={checkpoint_pages}")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _pace_the_relay(self, outcomes: list[Outcome], now: datetime) -> None:
        """A relay that said "slow down" rests the whole worker, longer each time in a row,
        instead of charging each reader an attempt."""
        if any(outcome.throttled for outcome in outcomes):
            self._rest(now)
        else:
            self.rest, self.rest_until = timedelta(), None

    def _rest(self, now: datetime) -> None:
        """Rest every kind of message, longer each time in a row."""
        self.rest = min(max(self.rest * 2, REST), MAX_REST)
        self.rest_until = now + self.rest
        log.warning("the relay asked drip to slow down: resting %ss", self.rest.seconds)

    def _resting(self, now: datetime) -> bool:
        return self.rest_until is not None and now < self.rest_until

    def preview(self, library: Library, now: datetime) -> Iterator[Outcome]:
        """What a pass at `now` would do, changing nothing (`drip dispatch --dry-run`): the
        same plan for the same readers, reported instead of carried out."""
        with self.engine.connect() as conn:
            for batch in peek(conn, now, self.settings.confirm_days):
                folder = self.settings.sequences_dir
                plans = [plan(c, library, now, sequences_dir=folder) for c in batch]
                plans, waiting = split_over_cap(conn, plans, now, self.caps)
                yield from (held_outcome(wait) for wait in waiting)  # held, as the pass does
                for planned in plans:
                    yield (
                        planned.outcome(OutcomeStatus.WOULD_SEND)
                        if isinstance(planned, Send)
                        else planned.outcome()
                    )
