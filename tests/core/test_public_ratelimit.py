"""The database-backed fixed-window limiter, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from drip.store.db import make_engine, make_sessionmaker
from drip.store.models import RateLimit
from drip.store.ratelimit import hit, hits, window_start

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_a_key_is_allowed_up_to_its_limit_per_window(backend_url: str) -> None:
    engine = make_engine(backend_url)
    with Session(engine) as session:
        answers = [hit(session, "signup:ip:1", 3, NOON + timedelta(minutes=i)) for i in range(4)]
        other = hit(session, "signup:ip:2", 3, NOON)
        next_hour = hit(session, "signup:ip:1", 3, NOON + timedelta(hours=1))
        session.commit()
        row = session.get(RateLimit, "signup:ip:1")
        assert row is not None and (row.count, row.window_start) == (1, NOON + timedelta(hours=1))
    engine.dispose()

    assert answers == [True, True, True, False]
    assert other is True and next_hour is True


def test_several_keys_are_counted_at_once(backend_url: str) -> None:
    engine = make_engine(backend_url)
    with Session(engine) as session:
        first = hits(session, {"a": 1, "b": 2}, NOON)
        second = hits(session, {"a": 1, "b": 2}, NOON)
        session.commit()
    engine.dispose()

    assert (first, second) == ({"a": True, "b": True}, {"a": False, "b": True})


def test_concurrent_hits_are_all_counted(backend_url: str) -> None:
    """Eight threads with their own connections, as eight workers: no hit is lost."""
    engine = make_engine(backend_url)
    sessions = make_sessionmaker(engine)
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            with sessions() as session:
                allowed = hit(session, "busy", 20, NOON)
                session.commit()
            with lock:
                results.append(allowed)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with sessions() as session:
        row = session.get(RateLimit, "busy")
        assert row is not None and row.count == 40
    engine.dispose()

    assert results.count(True) == 20 and results.count(False) == 20


def test_windows_are_aligned_to_the_hour() -> None:
    assert window_start(NOON + timedelta(minutes=59, seconds=59), timedelta(hours=1)) == NOON
