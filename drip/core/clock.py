"""Time as a dependency: every function that asks "what is due?" takes `now` from a clock.

Tests pass a `FrozenClock` and move it forward instead of sleeping, so a 30-day course
runs in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant; a naive one is taken as UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def as_utc(value: datetime) -> datetime:
    """Databases hand back naive datetimes (SQLite) or aware ones (PostgreSQL); use aware UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = as_utc(start)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now

    def set(self, value: datetime) -> None:
        self.now = as_utc(value)
