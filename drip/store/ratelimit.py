"""A fixed-window counter in the database, so every gunicorn worker sees the same counts.

One statement for all the keys of an attempt: an upsert that starts a new window or adds one
to the current one and returns each count, so two workers counting the same key at once
cannot both get "first". The hit joins the caller's transaction: a sign-up and the counts it
used commit together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, TextClause, bindparam, text
from sqlalchemy.orm import Session

from drip.store.models import RateLimit

HOUR = timedelta(hours=1)
KEY_LENGTH = 255  # the column's: a longer key is counted under its first 255 characters


def window_start(now: datetime, window: timedelta) -> datetime:
    """The start of the fixed window holding `now` (windows are aligned to the epoch)."""
    seconds = int(window.total_seconds())
    stamp = int(now.timestamp())
    return datetime.fromtimestamp(stamp - stamp % seconds, tz=now.tzinfo)


def counting(rows: int) -> TextClause:
    """The counting statement for `rows` keys (bound as key0, key1... and start). Plain SQL,
    the same for SQLite and PostgreSQL: SQLAlchemy compiles a multi-row insert anew on every
    call, while a text statement built once is compiled once (drip.audience.signup runs it
    on the driver's cursor)."""
    values = ", ".join(f"(:key{n}, :start, 1)" for n in range(rows))
    return text(
        f'INSERT INTO rate_limits ("key", window_start, count) VALUES {values} '
        'ON CONFLICT ("key") DO UPDATE SET '
        "count = CASE WHEN rate_limits.window_start = :start THEN rate_limits.count + 1 "
        'ELSE 1 END, window_start = :start RETURNING "key", count'
    ).bindparams(
        bindparam("start", type_=RateLimit.__table__.c.window_start.type),
        *(bindparam(f"key{n}", type_=String()) for n in range(rows)),
    )


_STATEMENTS = {rows: counting(rows) for rows in (1, 2)}


def count_attempts(
    execute: Callable[[int, dict[str, Any]], Iterable[tuple[str, int]]],
    limits: Mapping[str, int],
    now: datetime,
    window: timedelta = HOUR,
) -> dict[str, bool]:
    """Count one attempt for each key; for each, True while its count is within its limit.
    `execute(rows, params)` runs `counting(rows)` and gives its (key, count) rows: through
    a session (`hits`) or on a driver's cursor (drip.audience.signup_queue). Keys that are
    one row once cut to the column's length are counted one at a time: one row may not be
    upserted twice in one statement."""
    if not limits:
        return {}
    start = window_start(now, window)
    stored = {key: key[:KEY_LENGTH] for key in limits}
    keys = list(limits)
    batches = [keys] if len(set(stored.values())) == len(keys) else [[key] for key in keys]
    within: dict[str, bool] = {}
    for batch in batches:
        params: dict[str, Any] = {f"key{n}": stored[key] for n, key in enumerate(batch)}
        counts = dict(execute(len(batch), {**params, "start": start}))
        within.update({key: counts[stored[key]] <= limits[key] for key in batch})
    return within


def hits(
    session: Session, limits: Mapping[str, int], now: datetime, window: timedelta = HOUR
) -> dict[str, bool]:
    """Count one attempt for each key (`count_attempts`), in the session's transaction."""
    conn = session.connection()  # Core, not the ORM: this runs on every login attempt

    def execute(rows: int, params: dict[str, Any]) -> Iterable[tuple[str, int]]:
        statement = _STATEMENTS[rows] if rows in _STATEMENTS else counting(rows)
        return ((key, count) for key, count in conn.execute(statement, params))

    return count_attempts(execute, limits, now, window)


def hit(
    session: Session,
    key: str,
    limit: int,
    now: datetime,
    window: timedelta = HOUR,
) -> bool:
    """Count one attempt for `key`; True while the window's count is within `limit`."""
    return hits(session, {key: limit}, now, window)[key]
