"""How long scheduling a broadcast to N readers takes (`drip broadcast send`, the admin's
Schedule), against a bare INSERT ... SELECT of the same rows, and the memory it takes.

In one run, on N readers who finished the course (100,000; spread over 24 time zones):

1. drip's `schedule`: the broadcast, its audience, one recipient row per reader due in
   their window, committed;
2. the bare statement: INSERT ... SELECT of one row per finished enrollment, all due at the
   same instant, committed (then deleted);
3. `schedule` again under tracemalloc, for the peak of Python's memory while it runs.

It ends with `schedule_vs_bare_insert RATIO` (drip's time over the bare statement's) and
`schedule_peak_mb` (flat, whatever N: no reader passes through Python).

    .venv/bin/python bench/broadcast_schedule.py --database-url postgresql+psycopg://...
    .venv/bin/python bench/broadcast_schedule.py --readers 20000   # SQLite, a quick look

With --database-url, the drip tables of that database are EMPTIED first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from common import bench_settings, reset, say
from sqlalchemy import Table, delete, insert, text
from sqlalchemy.engine import Engine

from drip.dispatch import broadcasts
from drip.services import Services, build_services
from drip.store.models import BroadcastRecipient, Enrollment, Subscriber

NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
SLUG = "interview-questions"
CHUNK = 20_000
ZONES = [f"Etc/GMT{offset:+d}" if offset else "UTC" for offset in range(-12, 12)]
S = cast(Table, Subscriber.__table__)
E = cast(Table, Enrollment.__table__)
NEWS = """---
subject: "A new post"
to: [interview-questions]
readers: completed
---
Hello {{ first_name }}, a new post is up.
"""
BARE = """
INSERT INTO broadcast_recipients (broadcast_id, subscriber_id, enrollment_id, status, due_at,
                                  attempts)
SELECT :broadcast, e.subscriber_id, e.id, 'queued', :due, 0 FROM enrollments e
WHERE e.status = 'completed'
"""


def load(engine: Engine, count: int) -> None:
    """`count` readers who finished the course, in 24 time zones in turn."""
    for start in range(1, count + 1, CHUNK):
        ids = range(start, min(start + CHUNK, count + 1))
        people = [
            {
                "id": i,
                "email": f"reader{i:07d}@example.org",
                "first_name": f"Reader{i}",
                "timezone": ZONES[i % len(ZONES)],
                "attributes": {},
                "created_at": NOW - timedelta(days=60),
            }
            for i in ids
        ]
        enrolled: list[dict[str, Any]] = [
            {
                "id": i,
                "subscriber_id": i,
                "sequence": SLUG,
                "status": "completed",
                "attempts": 0,
                "created_at": NOW - timedelta(days=60),
                "confirmed_at": NOW - timedelta(days=60),
                "completed_at": NOW - timedelta(days=2),
            }
            for i in ids
        ]
        with engine.begin() as conn:
            conn.execute(insert(S), people)
            conn.execute(insert(E), enrolled)
        say(f"  loaded {ids[-1]:,}/{count:,} readers")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))


def drip_schedule(svc: Services) -> tuple[float, int]:
    library = svc.content.library()
    spec = broadcasts.parse_broadcast(NEWS, Path("news.md"), library)
    began = time.perf_counter()
    with svc.sessions() as session:
        broadcast = broadcasts.schedule(session, library, spec, NOW, NOW)
    took = time.perf_counter() - began
    with svc.sessions() as session:
        written = broadcasts.progress(session, broadcast.id).total()
    return took, written


def bare_insert(svc: Services) -> tuple[float, int]:
    library = svc.content.library()
    spec = broadcasts.parse_broadcast(NEWS, Path("bare.md"), library)
    with svc.sessions() as session:
        broadcast_id = broadcasts.create_draft(session, spec, NOW, "bench").id
        session.commit()
    began = time.perf_counter()
    with svc.engine.begin() as conn:
        written = conn.execute(text(BARE), {"broadcast": broadcast_id, "due": NOW}).rowcount
    took = time.perf_counter() - began
    with svc.engine.begin() as conn:
        conn.execute(
            delete(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == broadcast_id)
        )
    return took, int(written)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a database of its own (emptied first)")
    parser.add_argument("--readers", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
        svc = build_services(bench_settings(tmp, url), clock=lambda: NOW)
        try:
            reset(svc.engine)
            load(svc.engine, args.readers)
            say("the bare INSERT ... SELECT ...")
            bare_s, bare_n = bare_insert(svc)
            say("drip's schedule ...")
            drip_s, drip_n = drip_schedule(svc)
            say("drip's schedule again, under tracemalloc ...")
            tracemalloc.start()
            drip_schedule(svc)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        finally:
            svc.engine.dispose()
    if drip_n != bare_n:
        raise SystemExit(f"drip wrote {drip_n} recipients, the bare statement {bare_n}")
    print(f"backend {svc.engine.dialect.name}; {args.readers:,} readers in {len(ZONES)} time zones")
    print(f"schedule  {drip_s:.2f} s ({drip_n / drip_s:,.0f} recipients/s)")
    print(f"bare      {bare_s:.2f} s ({bare_n / bare_s:,.0f} rows/s)")
    print(f"schedule_vs_bare_insert {drip_s / bare_s:.2f}")
    print(f"schedule_peak_mb {peak / 1e6:.1f}")


if __name__ == "__main__":
    main()
