"""How fast a CSV of readers is imported (drip.audience.imports: the job `drip import` and the
admin's upload run), and whether memory stays flat as the file grows.

A file of --size rows (email, first_name, timezone; one row in a hundred refused for a bad
address) is imported into a course of the checkout as `drip import --confirmed` would:
queued, then run to its end. The baseline, measured in the same run on the same rows: a
bare executemany INSERT of the readers alone, 1,000 rows a statement, in one transaction
(then removed), with no check, enrollment, timeline or consent. It prints the rows per
second of each, `import_vs_bare_insert` (drip's time over the bare insert's) and the growth
of the process's peak resident memory during the import (measured first, so the bare
insert's own list of rows does not hide it; the CSV file is written before, and read
from disk as `drip import` reads it).

    .venv/bin/python bench/imports.py                     # SQLite in a temporary folder
    .venv/bin/python bench/imports.py --size 1000000
    .venv/bin/python bench/imports.py --database-url postgresql+psycopg://postgres@127.0.0.1/b
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from common import bench_settings, reset, say, short
from sqlalchemy import Table, delete, insert
from sqlalchemy.engine import Engine, make_url

from drip.audience.imports import queue_import, run_import
from drip.services import build_services
from drip.store.db import make_engine
from drip.store.models import Subscriber

COURSE = "procrastination"
BATCH = 1_000
NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
S = cast(Table, Subscriber.__table__)


def csv_text(size: int) -> str:
    lines = ["email,first_name,timezone\n"]
    for n in range(size):
        email = f"not an address {n}" if n % 100 == 42 else f"reader{n}@example.org"
        lines.append(f"{email},Reader {n},Europe/Paris\n")
    return "".join(lines)


def bare_insert(engine: Engine, size: int) -> float:
    """Seconds for the readers alone, inserted as plainly as SQL allows; removed after."""
    rows = [
        {
            "email": f"reader{n}@example.org",
            "first_name": f"Reader {n}",
            "timezone": "Europe/Paris",
            "attributes": {},
            "created_at": NOW,
        }
        for n in range(size)
        if n % 100 != 42
    ]
    began = time.perf_counter()
    with engine.begin() as conn:
        for start in range(0, len(rows), BATCH):
            conn.execute(insert(S), rows[start : start + BATCH])
    seconds = time.perf_counter() - began
    with engine.begin() as conn:
        conn.execute(delete(S))
    return seconds


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a database of its own (emptied first)")
    parser.add_argument("--size", type=int, default=200_000, help="rows (%(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/imports-bench.sqlite3"
        settings = bench_settings(tmp, url)
        engine = make_engine(url)
        reset(engine)
        svc = build_services(settings, lambda: NOW)
        library = svc.content.library()
        say(f"writing a CSV of {args.size:,} rows")
        upload = Path(tmp) / "bench.csv"
        upload.write_text(csv_text(args.size), encoding="utf-8")
        say("the import")
        before = peak_mb()
        began = time.perf_counter()
        with svc.sessions() as session, upload.open(encoding="utf-8", newline="") as stream:
            job = queue_import(
                session,
                library,
                stream,
                filename="bench.csv",
                sequence=COURSE,
                confirmed=True,
                source="bench",
                who="bench",
                now=NOW,
                data_dir=settings.data_dir,
            )
            session.commit()
            job_id = job.id
        done = run_import(svc.sessions, library, job_id, NOW, data_dir=settings.data_dir)
        seconds = time.perf_counter() - began
        grown = peak_mb() - before  # before the bare insert's list of rows raises the peak
        assert done is not None and done.status == "done", done and done.last_error
        reset(engine)  # the bare insert starts from empty tables, as the import did
        say("the bare insert")
        bare = bare_insert(engine, args.size)
        print(f"backend {make_url(url).get_backend_name()}, {short(args.size)} rows")
        print(f"added {done.added:,}, refused {done.refused:,}")
        print(f"bare insert {args.size / bare:10,.0f} rows/s")
        print(f"import      {args.size / seconds:10,.0f} rows/s")
        print(f"import_vs_bare_insert {seconds / bare:.1f}")
        print(f"peak memory grew by {grown:.0f} MB during the import")
        svc.engine.dispose()
        engine.dispose()


if __name__ == "__main__":
    main()
