"""The relay's pace (`DRIP_SEND_RATE`), shared by every worker through one database row.

Messages are spaced a little over 1/rate seconds apart (a virtual schedule: each send takes
the next free slot), so no second ever holds more than the rate, however many workers and
connections send. A worker reserves a run of slots with one UPDATE ... RETURNING (on
PostgreSQL the row lock makes workers take turns), then waits for each of its slots before
the hand-off. A worker that dies leaves its reserved slots unused: slower, never faster.

Every kind of message takes its slot here (lessons and confirmations in drip.dispatch.send,
the others in the one sender, drip.dispatch.sender), and every kind is retried by the one
rule (`backoff`, DRIP_MAX_ATTEMPTS: drip.dispatch.producers.next_step).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, func, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from drip.store.models import SendPace

ROW = "relay"
MARGIN = 1.15  # slots wider than 1/rate: the jitter of a loaded host and network must not
# bunch them at the relay (measured here: up to ~100 ms with four workers on two cores)
PACE = cast(Table, SendPace.__table__)
LATE = 0.002  # seconds a slot may be past and still used
MAX_BACKOFF = timedelta(hours=6)


def backoff(attempts: int) -> timedelta:
    """1, 2, 4 ... minutes after each transient failure, capped at six hours: the one wait
    between tries for every kind of message."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def _greatest(conn: Connection, column: Any, value: float) -> Any:
    """GREATEST(column, value); SQLite spells it MAX(a, b)."""
    if conn.dialect.name == "sqlite":
        return func.max(column, value)
    return func.greatest(column, value)


class Slot(NamedTuple):
    """The send slot one hand-off took: its time on the pace's clock, and whether the sender
    had to wait for it."""

    at: float
    waited: bool


class Pace:
    """Waits, before each hand-off, for a send slot of the shared budget."""

    def __init__(
        self,
        engine: Engine,
        rate: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = engine
        self.gap = MARGIN / rate
        self.chunk = max(1, math.floor(rate / 4))  # about a quarter second of slots at once
        self.clock = clock
        self.sleep = sleep
        self._slots: list[float] = []
        self._lock = threading.Lock()

    def _reserve(self) -> list[float]:
        span = self.gap * self.chunk
        for _ in range(3):
            with self.engine.begin() as conn:
                now = self.clock()
                end = conn.scalar(
                    update(PACE)
                    .where(PACE.c.name == ROW)
                    .values(next_slot=_greatest(conn, PACE.c.next_slot, now) + span)
                    .returning(PACE.c.next_slot)
                )
                if end is None:
                    try:
                        with conn.begin_nested():
                            conn.execute(insert(PACE).values(name=ROW, next_slot=now + span))
                    except IntegrityError:
                        continue  # another worker made the row at the same moment
                    end = now + span
            start = float(end) - span
            return [start + i * self.gap for i in range(self.chunk)]
        raise RuntimeError("could not reserve send slots")

    def wait(self) -> bool:
        """Block until this worker's next slot; True if it had to wait (see `take`)."""
        return self.take().waited

    def take(self) -> Slot:
        """Block until this worker's next slot and give it; reserve more when it has none
        left. A slot already past is dropped, not used late: a late send would land in a
        second that other slots already fill. So is a slot this thread woke up for too late
        (a loaded host may wake a sleeper tens of milliseconds after its time): it takes the
        next one instead, so no send is let through more than half a gap after its slot.

        What the pace itself guarantees, on one clock: the slots it gives are at least
        MARGIN/rate apart across every worker, and each send is let through at or after its
        slot. The work between that and the relay (the reader's status read, building the
        message, the SMTP exchange) can only delay a message; the MARGIN absorbs differences of
        up to 0.15 s in that delay before a second at the relay could hold more than the rate."""
        waited = False
        while True:
            with self._lock:
                while True:
                    if not self._slots:
                        self._slots = self._reserve()
                    slot = self._slots.pop(0)
                    if slot >= self.clock() - LATE:
                        break
            delay = slot - self.clock()
            if delay > 0:
                self.sleep(delay)
                waited = True
            if self.clock() - slot <= self.gap / 2:
                return Slot(slot, waited)
