"""What one claim costs a pass with a backlog: a batch of 200 taken with 1,000 readers due,
then with 1,000,000 due (a big import all due at once, or a long outage), in one run.

Each size is loaded fresh (bench/dispatch.py's readers, every one due), then the pass's
claim (`drip.dispatch.claim.lease`) runs CLAIMS times in a row, each taking the next 200
longest-due readers as a pass does; the median counts. Before `queries.longest_due`,
PostgreSQL read and sorted every due reader for each batch (280 ms a claim at 1,000,000).

It ends with `claim_1m_vs_1k RATIO` (a claim at the largest backlog over one at the
smallest; the cost of a batch should not grow with what waits behind it).

    .venv/bin/python bench/claim.py                                  # SQLite, temporary
    .venv/bin/python bench/claim.py --database-url postgresql+psycopg://postgres@/bench
    .venv/bin/python bench/claim.py --backlogs 1000,100000           # a quick look

With --database-url, the drip tables of that database are EMPTIED first.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta

from common import bench_settings, reset, say, short
from dispatch import NOW, SLUG, load

from drip.dispatch.claim import lease
from drip.services import build_services

BATCH = 200
CLAIMS = 5  # taken in a row at each size; the median counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a database of its own (emptied first)")
    parser.add_argument("--backlogs", default="1000,1000000", help="readers due, smallest first")
    args = parser.parse_args()
    backlogs = [int(n) for n in args.backlogs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
        svc = build_services(bench_settings(tmp, url), clock=lambda: NOW)
        sequence = svc.content.library().get(SLUG)
        assert sequence is not None
        medians: dict[int, float] = {}
        try:
            for due in backlogs:
                reset(svc.engine)
                say(f"loading {due:,} readers, all due")
                load(svc.engine, 1, due, due, sequence)
                took = []
                with svc.engine.connect() as conn:
                    postgres = conn.dialect.name == "postgresql"
                    for _ in range(CLAIMS):
                        began = time.perf_counter()
                        claimed = lease(
                            conn,
                            NOW,
                            worker_id="bench",
                            batch_size=BATCH,
                            lease_end=NOW + timedelta(hours=1),
                            skip_locked=postgres,
                        )
                        took.append(time.perf_counter() - began)
                        if len(claimed) != BATCH:
                            raise SystemExit(f"expected a batch of {BATCH}, got {len(claimed)}")
                medians[due] = statistics.median(took)
                say(f"  a claim of {BATCH} with {due:,} due: {medians[due] * 1000:.1f} ms")
        finally:
            svc.engine.dispose()
    print(f"backend {svc.engine.dialect.name}; a claim of {BATCH}, median of {CLAIMS}")
    for due, seconds in medians.items():
        print(f"{due:>10,} due  {seconds * 1000:8.1f} ms")
    small, large = backlogs[0], backlogs[-1]
    print(f"claim_{short(large)}_vs_{short(small)} {medians[large] / medians[small]:.2f}")


if __name__ == "__main__":
    main()
