"""How the operator's pages grow with the database: 100,000 enrollments, then 1,000,000.

Each enrollment has its own reader and a realistic five deliveries (mostly sent over the past
year, a few failed or retrying); enrollments are spread over the four courses in
`sequences/` in a realistic mix (most completed or unsubscribed, some suppressed, the rest
active). After each load the bench logs an operator in with Flask's test client and times
the dashboard, the readers list (first and last page), a search by address, the deliveries
log and `/metrics`: the median of REQUESTS requests each, after one warm-up request.

It ends with `admin_1m_vs_100k RATIO` (the largest growth of any page: its time at the
largest size over its time at the smallest; target <= 2) and `dashboard_1m_ms N` (target
< 200).

    .venv/bin/python bench/admin.py                  # PostgreSQL on 127.0.0.1 (own database)
    .venv/bin/python bench/admin.py --database-url sqlite:////tmp/admin-bench.sqlite3
    .venv/bin/python bench/admin.py --sizes 10000,100000   # a quick look

By default it creates a database of its own on the PostgreSQL server and drops it at the
end; a --database-url database has its drip tables EMPTIED first.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from common import bench_settings, copy_rows, reset, say, short
from flask.testing import FlaskClient
from sqlalchemy import Table, insert, text
from sqlalchemy.engine import Engine, make_url

from drip.app import create_app
from drip.content.sequences import Library
from drip.ops.operators import create_operator
from drip.services import Services
from drip.store import rollups
from drip.store.db import make_engine
from drip.store.models import Delivery, Enrollment, Subscriber

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
CHUNK = 20_000
DELIVERIES = 5  # per enrollment
REQUESTS = 5  # per page and size; the median counts
OPERATOR, PASSWORD = "bench@example.org", "bench-password-123"
S = cast(Table, Subscriber.__table__)
E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)


def address(n: int) -> str:
    return f"reader{n:07d}@example.org"


def _status(i: int) -> str:
    bucket = i % 20
    return (
        "completed"
        if bucket < 11
        else "unsubscribed"
        if bucket < 16
        else "suppressed"
        if bucket == 16
        else "active"
    )


def _rows(
    first: int,
    count: int,
    courses: list[tuple[str, list[tuple[str, str]]]],
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]]:
    """(subscribers, enrollments, deliveries) in chunks, ids from `first`."""
    for start in range(first, first + count, CHUNK):
        people: list[dict[str, Any]] = []
        enrolled: list[dict[str, Any]] = []
        sent: list[dict[str, Any]] = []
        for ident in range(start, min(start + CHUNK, first + count)):
            slug, lessons = courses[ident % len(courses)]
            status = _status(ident)
            # the fifth lesson went out at most a day ago, so each day of the last year
            # has its share of the sends and none lies in the future
            joined = NOW - timedelta(days=2 * (DELIVERIES - 1) + ident % 365, minutes=ident % 1440)
            people.append(
                {
                    "id": ident,
                    "email": address(ident),
                    "first_name": f"Reader{ident}",
                    "timezone": "America/New_York",
                    "attributes": {},
                    "created_at": joined,
                    "suppressed_at": joined if status == "suppressed" else None,
                    "suppressed_reason": "550 no such user" if status == "suppressed" else None,
                }
            )
            last = joined + timedelta(days=2 * (DELIVERIES - 1))
            enrolled.append(
                {
                    "id": ident,
                    "subscriber_id": ident,
                    "sequence": slug,
                    "status": status,
                    "attempts": 0,
                    "created_at": joined,
                    "confirmed_at": joined,
                    "next_lesson": lessons[DELIVERIES][0] if status == "active" else None,
                    "due_at": NOW + timedelta(minutes=ident % (7 * 1440))
                    if status == "active"
                    else None,
                    "last_sent_at": last,
                    "completed_at": last if status == "completed" else None,
                    "unsubscribed_at": last if status == "unsubscribed" else None,
                }
            )
            for k, (lesson, version) in enumerate(lessons[:DELIVERIES]):
                at = joined + timedelta(days=2 * k)
                outcome = (
                    "failed"
                    if k == DELIVERIES - 1 and ident % 100 == 7
                    else "retrying"
                    if k == DELIVERIES - 1 and ident % 200 == 3
                    else "sent"
                )
                sent.append(
                    {
                        "id": ident * DELIVERIES + k,
                        "enrollment_id": ident,
                        "lesson": lesson,
                        "lesson_version": version,
                        "status": outcome,
                        "attempts": 1,
                        "message_id": f"<drip.{ident}.{lesson}@bench>",
                        "last_error": "550 5.1.1 no such user" if outcome == "failed" else None,
                        "created_at": at,
                        "updated_at": at,
                        "sent_at": at if outcome == "sent" else None,
                    }
                )
        yield people, enrolled, sent


def load(engine: Engine, first: int, count: int, library: Library) -> None:
    """Bulk-load `count` enrollments with their readers and deliveries, then bring the
    rollups up to date the way a bulk import does (rollups.rebuild)."""
    courses = [
        (slug, [(lesson.key, lesson.version) for lesson in seq.lessons])
        for slug, seq in sorted(library.sequences.items())
    ]
    postgres = engine.dialect.name == "postgresql"
    began = time.perf_counter()
    with engine.begin() as conn:
        if postgres:  # row triggers keep the rollups; a bulk load rebuilds them once instead
            for table in ("enrollments", "deliveries"):
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    done = 0
    try:
        for people, enrolled, sent in _rows(first, count, courses):
            with engine.begin() as conn:
                if postgres:
                    raw = conn.connection.driver_connection
                    copy_rows(raw, "subscribers", people)
                    copy_rows(raw, "enrollments", enrolled)
                    copy_rows(raw, "deliveries", sent)
                else:
                    conn.execute(insert(S), people)
                    conn.execute(insert(E), enrolled)
                    conn.execute(insert(D), sent)
            done += len(enrolled)
            say(f"  loaded {done:,}/{count:,} enrollments ({time.perf_counter() - began:.0f} s)")
    finally:
        with engine.begin() as conn:
            if postgres:
                for table in ("enrollments", "deliveries"):
                    conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
            if postgres:
                rollups.rebuild(conn)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if postgres:
            for table in ("subscribers", "enrollments", "deliveries"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
            conn.execute(text("VACUUM (ANALYZE)"))
        else:
            conn.execute(text("ANALYZE"))
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    say(f"  loaded and analysed in {time.perf_counter() - began:.0f} s")


def log_in(web: FlaskClient) -> None:
    page = web.get("/admin/login").text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = web.post(
        "/admin/login", data={"csrf_token": token, "email": OPERATOR, "password": PASSWORD}
    )
    if answer.status_code != 302:
        raise SystemExit(f"login failed: {answer.status_code}")


def pages(size: int) -> dict[str, str]:
    """The pages timed, by label; the search is a prefix that matches ten readers."""
    return {
        "dashboard": "/admin/",
        "readers first page": "/admin/readers",
        "readers last page": "/admin/readers?page=last",
        "search by address": f"/admin/readers?q={address(size // 2)[: -len('0@example.org')]}",
        "deliveries": "/admin/deliveries",
        "failed deliveries": "/admin/deliveries?status=failed",
        "metrics": "/metrics",
    }


def median_seconds(web: FlaskClient, url: str) -> float:
    """The median of REQUESTS GETs of `url`, after one that warms the caches."""
    samples = []
    for attempt in range(REQUESTS + 1):
        began = time.perf_counter()
        answer = web.get(url)
        if attempt:
            samples.append(time.perf_counter() - began)
        if answer.status_code != 200:
            raise SystemExit(f"{url}: HTTP {answer.status_code}")
    return statistics.median(samples)


def time_pages(web: FlaskClient, size: int) -> dict[str, float]:
    times: dict[str, float] = {}
    for label, url in pages(size).items():
        times[label] = median_seconds(web, url)
        say(f"  {label:20} {times[label] * 1000:8.1f} ms   {url}")
    return times


def _own_database() -> tuple[str, Engine]:
    name = f"drip_bench_admin_{uuid.uuid4().hex[:8]}"
    server = make_engine(SERVER, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(SERVER).set(database=name).render_as_string(hide_password=False), server


@dataclass(frozen=True)
class Bench:
    url: str
    engine: Engine
    svc: Services
    web: FlaskClient


@contextmanager
def admin_bench(database_url: str | None, **settings: Any) -> Iterator[Bench]:
    """What every admin bench starts from: a migrated, emptied database (a new one on the
    PostgreSQL server unless `database_url` names one; dropped at the end), drip's app on it
    with the courses of the checkout, and an operator logged in through the test client."""
    server: Engine | None = None
    url = database_url
    if not url:
        url, server = _own_database()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app_settings = bench_settings(tmp, url, **settings)
            engine = make_engine(url)
            reset(engine)
            app = create_app(app_settings, clock=lambda: NOW)
            svc: Services = app.extensions["drip"]
            with svc.sessions() as session:
                create_operator(session, OPERATOR, PASSWORD, NOW)
                session.commit()
            web = app.test_client()
            log_in(web)
            try:
                yield Bench(url, engine, svc, web)
            finally:
                svc.engine.dispose()
                engine.dispose()
    finally:
        if server is not None:
            with server.connect() as conn:
                conn.execute(
                    text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
                )
            server.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        help="a database of its own (emptied first); "
        "default: a new database on the PostgreSQL server, dropped at the end",
    )
    parser.add_argument(
        "--sizes",
        default="100000,1000000",
        help="enrollment counts to time, smallest first (default %(default)s)",
    )
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    results: dict[int, dict[str, float]] = {}
    with admin_bench(args.database_url) as bench:
        url = bench.url
        loaded = 0
        for size in sizes:
            say(f"loading up to {size:,} enrollments ({DELIVERIES} deliveries each)")
            load(bench.engine, loaded + 1, size - loaded, bench.svc.content.library())
            loaded = size
            say(f"timing the pages at {size:,} enrollments")
            results[size] = time_pages(bench.web, size)
    small, large = sizes[0], sizes[-1]
    print(
        f"backend {make_url(url).get_backend_name()}; {DELIVERIES} deliveries per "
        f"enrollment; median of {REQUESTS} requests"
    )
    print(f"{'page':20} " + " ".join(f"{short(s):>9}" for s in sizes))
    for label in results[small]:
        print(f"{label:20} " + " ".join(f"{results[s][label] * 1000:7.1f}ms" for s in sizes))
    worst = max(results[large], key=lambda label: results[large][label])
    ratio = max(results[large][label] / results[small][label] for label in results[small])
    print(f"worst page at {short(large)}: {worst}")
    print(f"admin_{short(large)}_vs_{short(small)} {ratio:.2f}")
    print(f"dashboard_{short(large)}_ms {results[large]['dashboard'] * 1000:.0f}")


if __name__ == "__main__":
    main()
