"""A fixed-window counter in the database, so every gunicorn worker sees the same counts.

One statement per key: an upsert that starts a new window or adds one to the current one
and returns the count, so two workers counting the same key at once cannot both get
"first". The hit joins the caller's transaction: a sign-up and the counts it used commit
together.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from drip.models import RateLimit

HOUR = timedelta(hours=1)


def window_start(now: datetime, window: timedelta) -> datetime:
    """The start of the fixed window holding `now` (windows are aligned to the epoch)."""
    seconds = int(window.total_seconds())
    stamp = int(now.timestamp())
    return datetime.fromtimestamp(stamp - stamp % seconds, tz=now.tzinfo)


def _upsert(dialect: str) -> Any:
    """The counting statement, built once per dialect so its compiled form is cached."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    start = bindparam("start", type_=RateLimit.__table__.c.window_start.type)
    upsert = insert(RateLimit).values(key=bindparam("key"), window_start=start, count=1)
    return upsert.on_conflict_do_update(
        index_elements=[RateLimit.key],
        set_={"count": case((RateLimit.window_start == start, RateLimit.count + 1), else_=1),
              "window_start": start},
    ).returning(RateLimit.count)


_STATEMENTS = {name: _upsert(name) for name in ("sqlite", "postgresql")}


def hits(session: Session, limits: Mapping[str, int], now: datetime,
         window: timedelta = HOUR) -> dict[str, bool]:
    """Count one attempt for each key; for each, True while its count is within its limit."""
    start = window_start(now, window)
    conn = session.connection()  # Core, not the ORM: this runs on every sign-up
    statement = _STATEMENTS["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    return {key: conn.execute(statement, {"key": key[:255], "start": start}).scalar_one()
            <= limit for key, limit in limits.items()}


def hit(session: Session, key: str, limit: int, now: datetime, window: timedelta = HOUR,
        ) -> bool:
    """Count one attempt for `key`; True while the window's count is within `limit`."""
    return hits(session, {key: limit}, now, window)[key]
