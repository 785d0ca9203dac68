"""How the admin's Segments page and the readers list with ?segment= grow with the database:
bench/admin.py's load (a reader per enrollment, five deliveries each), a third of the readers
tagged has-dates with an exam date spread over a year, one in fifty tagged vip.

Through Flask's test client, as the operator's browser would: the Segments page (which
counts nothing itself), each segment's count.json (what admin.js asks for each row), its
edit page (the count and the first few), and the readers list's first and last page with
?segment= (a keyset page and the total); each the median of bench/admin.py's REQUESTS
requests after a warm-up.

    .venv/bin/python bench/segments.py              # PostgreSQL on 127.0.0.1 (own database)
    .venv/bin/python bench/segments.py --database-url sqlite:////tmp/segments-bench.sqlite3
    .venv/bin/python bench/segments.py --size 20000           # a quick look
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from typing import Any, cast

from admin import NOW, admin_bench, load, median_seconds
from common import say
from flask.testing import FlaskClient
from sqlalchemy import Table, bindparam, insert, text, update
from sqlalchemy.engine import Engine, make_url

from drip.audience import segments
from drip.store.models import Subscriber, SubscriberTag

CHUNK = 5_000
S = cast(Table, Subscriber.__table__)
T = cast(Table, SubscriberTag.__table__)
SEGMENTS: dict[str, dict[str, Any]] = {
    "exam-soon": {
        "sequences": ["interview-questions"],
        "status": ["completed"],
        "tags": ["has-dates"],
        "exam_before": "2026-06-01",
    },
    "vip": {"tags": ["vip"]},
    "has-dates": {"tags": ["has-dates"]},
    "completed": {"status": ["completed"]},
    "quiet": {"no_lesson_within_days": 60},
    "everyone": {},
}


def answers(engine: Engine, size: int) -> None:
    """Tags and exam dates, as sign-ups would have left them."""
    first = date(2026, 3, 1)
    with engine.begin() as conn:
        for start in range(1, size + 1, CHUNK):
            ids = range(start, min(start + CHUNK, size + 1))
            dated = [i for i in ids if i % 3 == 0]
            conn.execute(
                update(S).where(S.c.id == bindparam("ident")).values(attributes=bindparam("a")),
                [
                    {"ident": i, "a": {"exam_date": (first + timedelta(days=i % 365)).isoformat()}}
                    for i in dated
                ],
            )
            tags = [(i, "has-dates") for i in dated] + [(i, "vip") for i in ids if i % 50 == 0]
            conn.execute(
                insert(T),
                [
                    {"subscriber_id": i, "tag": t, "source": "bench", "created_at": NOW}
                    for i, t in tags
                ],
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def timed(web: FlaskClient, url: str) -> float:
    """Milliseconds, the median of the admin bench's requests."""
    return median_seconds(web, url) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a database of its own (emptied first)")
    parser.add_argument("--size", type=int, default=100_000, help="enrollments (%(default)s)")
    args = parser.parse_args()
    with admin_bench(args.database_url) as bench:
        url, engine, svc, web = bench.url, bench.engine, bench.svc, bench.web
        with svc.sessions() as session:
            for name, definition in SEGMENTS.items():
                segments.save(session, name, definition, NOW, "bench")
            session.commit()
        say(f"loading {args.size:,} enrollments, tags and exam dates")
        load(engine, 1, args.size, svc.content.library())
        answers(engine, args.size)
        print(f"backend {make_url(url).get_backend_name()}, {args.size:,} enrollments")
        print(f"Segments page (no counts) {timed(web, '/admin/segments/'):8.1f} ms")
        print(
            f"{'segment':12} {'readers':>8} {'count.json':>11} {'edit page':>10} "
            f"{'list first':>11} "
            f"{'list last':>10}"
        )
        for name, definition in SEGMENTS.items():
            with svc.sessions() as session:
                number = segments.count(session, definition, NOW)
            counted = timed(web, f"/admin/segments/{name}/count.json")
            edit = timed(web, f"/admin/segments/{name}/edit")
            first = timed(web, f"/admin/readers?segment={name}")
            last = timed(web, f"/admin/readers?segment={name}&page=last")
            print(
                f"{name:12} {number:8,} {counted:9.1f}ms {edit:8.1f}ms {first:9.1f}ms {last:8.1f}ms"
            )


if __name__ == "__main__":
    main()
