"""The next batch claimed while this one is sent, on PostgreSQL.

A claim (the lease's UPDATE and the readers, earlier deliveries and confirmations it loads)
took 7% of a one-session pass, and with several SMTP sessions every session waited for it
between two batches (bench/PROFILE.md, "Claiming ahead"). Here it runs in a thread, on a
database connection of its own, while the batch before it is sent: the connection's wait
and the SMTP sessions' waits overlap.

- Only a full batch has one claimed after it: a batch cut short says nobody else was due.
- The claim is the same lease (drip.dispatch.claim), FOR UPDATE SKIP LOCKED: the batch
  being sent has its due times moved to its lease's end, so the claim ahead cannot take it.
- Whatever is decided at a batch's turn is still decided then, after the batch before it
  was recorded: the reader's cap (drip.dispatch.lesson_caps), the write-ahead rows, the
  status read right before each hand-off. A guardrail that paused sending meanwhile is
  read again when a batch claimed ahead takes its turn.
- A batch claimed ahead that does not get its turn (the relay went down or asked drip to
  rest, a guardrail paused sending, the pass failed) is put back at once, due at the pass's
  `now`, where its lease would otherwise hold its readers until it ran out.
- The price, with several workers: one holds up to two batches, so when fewer than two
  batches are due, one worker may send both in turn while another finds nothing; and a
  worker that dies leaves both to wait for their leases to end.
- SQLite has one writer: a claim beside the sends would wait for their commits, and they
  for it. There each batch is claimed in turn, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from types import TracebackType
from typing import Self, cast

from sqlalchemy import Connection, Table, update
from sqlalchemy.engine import Engine

from drip.deliverability.sending_pause import sending_paused
from drip.dispatch.claim import Claimed
from drip.store import queries
from drip.store.models import Enrollment

E = cast(Table, Enrollment.__table__)
log = logging.getLogger(__name__)

Claim = Callable[[Connection], list[Claimed]]


class ClaimsAhead:
    """A pass's batches of lessons, each claimed while the one before it is sent (with
    `ahead`; else each claimed at its turn). Use it as a context manager: leaving it puts
    back a batch claimed ahead that was not taken."""

    def __init__(
        self,
        engine: Engine,
        claim: Claim,
        *,
        ahead: bool,
        batch_size: int,
        worker_id: str,
        now: datetime,
    ) -> None:
        self.engine, self.claim, self.ahead = engine, claim, ahead
        self.batch_size, self.worker_id, self.now = batch_size, worker_id, now
        self._pool: ThreadPoolExecutor | None = None
        self._conn: Connection | None = None
        self._next: Future[list[Claimed]] | None = None

    def __enter__(self) -> Self:
        return self

    def take(self, conn: Connection) -> list[Claimed]:
        """The next batch: the one claimed ahead, or one claimed now on `conn`. Nothing
        while a guardrail has paused sending."""
        if self._next is None:
            return self.claim(conn)
        claimed = self._landed()
        if claimed and sending_paused(conn):  # since it was claimed
            self._put_back(conn, claimed)
            return []
        return claimed

    def after(self, claimed: Sequence[Claimed]) -> None:
        """`claimed` is about to be sent: claim the batch after it meanwhile, if it is full."""
        if not self.ahead or len(claimed) < self.batch_size:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="claim-ahead")
            self._conn = self.engine.connect()
        conn = self._conn
        assert conn is not None
        self._next = self._pool.submit(self.claim, conn)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._next is not None:
                self._put_back_unsent(failing=error is not None)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            if self._conn is not None:
                self._conn.close()

    def _landed(self) -> list[Claimed]:
        upcoming, self._next = self._next, None
        assert upcoming is not None
        return upcoming.result()

    def _put_back_unsent(self, *, failing: bool) -> None:
        """The batch claimed ahead did not get its turn: its readers due again at once. When
        the pass is failing anyway, its error is the one that counts; the lease puts them
        back if this cannot."""
        try:
            claimed = self._landed()
            if claimed:
                assert self._conn is not None
                self._put_back(self._conn, claimed)
        except Exception as problem:
            if not failing:
                raise
            log.warning("a batch claimed ahead waits for its lease to end: %s", problem)

    def _put_back(self, conn: Connection, claimed: Sequence[Claimed]) -> None:
        ids = [c.enrollment_id for c in claimed]
        conn.execute(
            update(E)
            .where(queries.among(conn, E.c.id, ids), E.c.lease_owner == self.worker_id)
            .values(due_at=self.now, lease_owner=None)
        )
        conn.commit()
