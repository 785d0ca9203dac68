"""How far this process's clock is from the database's.

Each worker decides what is due, and when the next lesson falls due, by its own clock: two
workers whose clocks differ by ten minutes send a `delay: 2m` lesson at once. drip cannot fix
a host's clock, but it can say so: the worker logs it (`Dispatcher.check_clock`) and /healthz
shows it. PostgreSQL has a clock of its own to compare with; a SQLite file lives on the
worker's own machine and has none.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from drip.core.clock import Clock, as_utc

SKEW_LIMIT = timedelta(seconds=5)  # beyond this, a worker's clock is said to be off
REPEAT = timedelta(hours=1)  # while it stays off, the log says so again this often
log = logging.getLogger(__name__)


def database_skew(conn: Connection, clock: Clock) -> timedelta | None:
    """This process's clock minus the database's (positive: ahead), or None where the
    database has no clock of its own (SQLite)."""
    if conn.dialect.name != "postgresql":
        return None
    before = clock()
    theirs = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    after = clock()
    return before + (after - before) / 2 - as_utc(theirs)


def describe(skew: timedelta, who: str = "this worker's") -> str:
    """The skew in plain words, with what to do about it."""
    side = "ahead of" if skew > timedelta() else "behind"
    return (
        f"{who} clock is {abs(skew.total_seconds()):.1f} s {side} the database's: what is due "
        "and when the next lesson falls due are counted on it, so sync it (NTP, chrony)"
    )


class ClockWatch:
    """Logs a worker's clock when it is off by more than SKEW_LIMIT: at once, then hourly
    while it lasts, and once when it is back in step."""

    def __init__(self) -> None:
        self.skew: timedelta | None = None
        self._said: datetime | None = None  # when the log last said the clock was off

    def check(self, conn: Connection, clock: Clock) -> timedelta | None:
        skew = self.skew = database_skew(conn, clock)
        if skew is None:
            return None
        now = clock()
        if abs(skew) > SKEW_LIMIT:
            if self._said is None or now - self._said >= REPEAT:
                seconds = round(skew.total_seconds(), 1)
                log.warning(describe(skew), extra={"fields": {"skew_seconds": seconds}})
                self._said = now
        elif self._said is not None:
            log.info("this worker's clock is back in step with the database's")
            self._said = None
        return skew
