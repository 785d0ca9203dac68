"""The next batch claimed while this one is sent, on PostgreSQL: lessons, and a broadcast's
copies.

A claim (the lease's UPDATE and the rows it loads) took 7% of a one-session pass of lessons
and 13% of a broadcast's, and with several SMTP sessions every session waited for it
between two batches (bench/PROFILE.md, "Claiming ahead"). Here it runs in a thread, on a
database connection of its own, while the batch before it is sent: the connection's wait
and the SMTP sessions' waits overlap.

- Only a full batch has one claimed after it, and only once a full batch went before it
  through the same `ClaimsAhead` (a pass's lessons, or a broadcast's copies): a batch cut
  short says nobody else was due, and a first batch says nothing yet of a backlog.
  Several workers whose passes start together each take one batch before any takes two
  (bench/workers.py: eight workers of one session sent 161 messages a second over a 20 ms
  relay, two of them 400 readers and two none, when the first batch had one claimed after
  it).
- The claim is the same lease (drip.dispatch.claim, drip.dispatch.producers), FOR UPDATE
  SKIP LOCKED: the batch being sent has its due times moved to its lease's end, so the
  claim ahead cannot take it.
- Whatever is decided at a batch's turn is still decided then, after the batch before it
  was recorded: the reader's cap (the lessons' drip.dispatch.lesson_caps reads again the
  readers of the batch before), the write-ahead rows, the status read right before each
  hand-off. A guardrail that paused sending meanwhile is read again when a batch claimed
  ahead takes its turn.
- A batch claimed ahead that does not get its turn (the relay went down or asked drip to
  rest, a guardrail paused sending, the pass failed) is put back at once, due at the pass's
  `now`, where its lease would otherwise hold its readers until it ran out.
- The price, with several workers: from its second batch on, one holds up to two, so at
  the end of a backlog one worker may send the last two in turn while another finds
  nothing; and a worker that dies leaves both to wait for their leases to end.
- SQLite has one writer: a claim beside the sends would wait for their commits, and they
  for it. There each batch is claimed in turn, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from types import TracebackType
from typing import Generic, Self, TypeVar, cast

from sqlalchemy import Connection, Table, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from drip.deliverability.sending_pause import sending_paused
from drip.dispatch.claim import Claimed
from drip.dispatch.outcome import OutcomeStatus
from drip.dispatch.producers import Item, Lease, Producer, Settled
from drip.store import queries
from drip.store.models import Enrollment

E = cast(Table, Enrollment.__table__)
log = logging.getLogger(__name__)
T = TypeVar("T")


class ClaimsAhead(Generic[T]):
    """A pass's batches of one kind, each claimed while the one before it is sent (with
    `ahead`; else none is). Use it as a context manager: leaving it puts back a batch
    claimed ahead that was not taken (`put_back`, on the claims' own connection)."""

    def __init__(
        self,
        engine: Engine,
        claim: Callable[[Connection], list[T]],
        put_back: Callable[[Connection, Sequence[T]], None],
        *,
        ahead: bool,
        batch_size: int,
    ) -> None:
        self.engine, self.claim, self.put_back = engine, claim, put_back
        self.ahead, self.batch_size = ahead, batch_size
        self._pool: ThreadPoolExecutor | None = None
        self._conn: Connection | None = None
        self._next: Future[list[T]] | None = None
        self._backlog = False  # a full batch went before: more than one was due

    def __enter__(self) -> Self:
        return self

    def take(self, conn: Connection) -> list[T] | None:
        """The batch claimed ahead (nothing, and put back, if a guardrail has paused
        sending since: read on `conn`); None if none was: the caller claims one now."""
        if self._next is None:
            return None
        claimed = self._landed()
        if claimed and sending_paused(conn):  # since it was claimed
            self._put_back(claimed)
            return []
        return claimed

    def after(self, claimed: Sequence[T]) -> None:
        """`claimed` is about to be sent: claim the batch after it meanwhile, if it is full
        and a full batch went before it (a backlog)."""
        if not self.ahead or len(claimed) < self.batch_size:
            return
        backlog, self._backlog = self._backlog, True
        if not backlog:
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

    def _landed(self) -> list[T]:
        upcoming, self._next = self._next, None
        assert upcoming is not None
        return upcoming.result()

    def _put_back_unsent(self, *, failing: bool) -> None:
        """The batch claimed ahead did not get its turn: due again at once. When the pass
        is failing anyway, its error is the one that counts; the lease puts them back if
        this cannot."""
        try:
            claimed = self._landed()
            if claimed:
                self._put_back(claimed)
        except Exception as problem:
            if not failing:
                raise
            log.warning("a batch claimed ahead waits for its lease to end: %s", problem)

    def _put_back(self, claimed: Sequence[T]) -> None:
        assert self._conn is not None
        self.put_back(self._conn, claimed)
        self._conn.commit()


def put_back_lessons(
    worker_id: str, now: datetime
) -> Callable[[Connection, Sequence[Claimed]], None]:
    """Readers claimed ahead, due again at `now` while this worker holds them."""

    def put_back(conn: Connection, claimed: Sequence[Claimed]) -> None:
        ids = [c.enrollment_id for c in claimed]
        conn.execute(
            update(E)
            .where(queries.among(conn, E.c.id, ids), E.c.lease_owner == worker_id)
            .values(due_at=now, lease_owner=None)
        )

    return put_back


def items_ahead(
    engine: Engine,
    producer: Producer,
    now: datetime,
    lease: Callable[[], Lease],
    *,
    batch_size: int,
    worker_id: str,
) -> ClaimsAhead[Item]:
    """A producer's batches (a broadcast's copies), each claimed ahead on PostgreSQL. The
    items claimed keep what their claim loaded (a broadcast's row) once its session is
    closed; one put back is due again at `now`, no attempt used."""

    def claim(conn: Connection) -> list[Item]:
        with Session(bind=conn, expire_on_commit=False) as own:
            return producer.due(own, now, batch_size, lease())

    def put_back(conn: Connection, items: Sequence[Item]) -> None:
        with Session(bind=conn) as own:
            for item in items:
                back = Settled(OutcomeStatus.HELD, item.attempts, None, now)
                producer.settle(own, item, back, worker_id)
            own.commit()

    postgres = engine.dialect.name == "postgresql"
    return ClaimsAhead(engine, claim, put_back, ahead=postgres, batch_size=batch_size)
