"""What the engagement sweep costs a pass after many readers acted, against the one statement
that does its main work, in one run.

Every dispatch pass starts with `drip.audience.engagement.sweep`: the readers who acted
since the last sweep (a click, a reply, a pace choice) become engaged, with their latest
action's time. Usually a handful; after a broadcast's clicks, or a worker that was down for
a day, tens of thousands. It used to load each such reader and write them one at a time
(two statements a reader, all of them held in the pass's session): minutes at 1,000,000.

For each size: that many readers (bench/dispatch.py's `load`), each clicking once, then
1. drip: `sweep` (every reader becomes engaged, as after a re-permission email);
2. bare: one `UPDATE subscribers ... FROM (the new clicks grouped by reader)` and a commit,
   over a fresh click from each reader.
In turns, ROUNDS times; the medians count. It ends with `sweep_vs_update RATIO` at the
largest size (the bare statement's time over the sweep's: 1.0 costs no more than it).

    .venv/bin/python bench/sweep.py                                  # SQLite, temporary
    .venv/bin/python bench/sweep.py --database-url postgresql+psycopg://postgres@/bench
    .venv/bin/python bench/sweep.py --readers 1000,10000             # a quick look

With --database-url, the drip tables of that database are EMPTIED first.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from typing import cast

from common import bench_settings, reset, say
from dispatch import NOW, SLUG, load
from sqlalchemy import Table, func, insert, literal, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from drip.audience.engagement import sweep
from drip.content.sequences import Library
from drip.services import build_services
from drip.store.models import Engagement, Event, EventKind, Subscriber

ROUNDS = 3
S = cast(Table, Subscriber.__table__)
EV = cast(Table, Event.__table__)


def clicks(engine: Engine, minute: int) -> int:
    """A click from every reader, `minute` minutes after NOW; the id before the first."""
    with engine.begin() as conn:
        before = conn.scalar(select(func.max(EV.c.id))) or 0
        conn.execute(
            insert(EV).from_select(
                ["subscriber_id", "kind", "at", "detail"],
                select(
                    S.c.id,
                    literal(EventKind.CLICKED.value),
                    literal(NOW + timedelta(minutes=minute), EV.c.at.type),
                    literal(""),
                ),
            )
        )
    return before


def quiet(engine: Engine) -> None:
    """Every reader quiet again, so that the next round changes every one."""
    with engine.begin() as conn:
        conn.execute(update(S).values(engagement=Engagement.QUIET, engaged_at=None))


def drip_sweep(engine: Engine, library: Library, minute: int) -> float:
    clicks(engine, minute)
    quiet(engine)
    began = time.perf_counter()
    with Session(engine) as session:
        swept = sweep(session, library, NOW + timedelta(minutes=minute, seconds=30))
    took = time.perf_counter() - began
    if swept.engaged == 0:
        raise SystemExit("the sweep engaged nobody")
    return took


def bare_update(engine: Engine, minute: int) -> float:
    after = clicks(engine, minute)
    quiet(engine)
    began = time.perf_counter()
    acted = (
        select(EV.c.subscriber_id, func.max(EV.c.at).label("at"))
        .where(EV.c.id > after)
        .group_by(EV.c.subscriber_id)
        .subquery()
    )
    with engine.begin() as conn:
        conn.execute(
            update(S)
            .where(S.c.id == acted.c.subscriber_id)
            .values(engaged_at=acted.c.at, engagement=Engagement.ENGAGED)
        )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a database of its own (emptied first)")
    parser.add_argument("--readers", default="1000,100000", help="readers who acted, ascending")
    args = parser.parse_args()
    sizes = [int(n) for n in args.readers.split(",")]
    figures: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
        svc = build_services(bench_settings(tmp, url), clock=lambda: NOW)
        library = svc.content.library()
        sequence = library.get(SLUG)
        assert sequence is not None
        try:
            for size in sizes:
                reset(svc.engine)
                load(svc.engine, 1, size, 0, sequence)
                with Session(svc.engine) as session:
                    sweep(session, library, NOW)  # the cursor starts here
                drip_took, bare_took = [], []
                for n in range(ROUNDS):
                    drip_took.append(drip_sweep(svc.engine, library, 2 * n + 1))
                    bare_took.append(bare_update(svc.engine, 2 * n + 2))
                figures[size] = statistics.median(drip_took), statistics.median(bare_took)
                say(f"  {size:,} readers acted: sweep {figures[size][0]:.3f} s")
        finally:
            svc.engine.dispose()
    print(f"backend {svc.engine.dialect.name}; medians of {ROUNDS}, in turns")
    for size, (ours, bare) in figures.items():
        print(
            f"{size:>10,} readers acted  sweep {ours:8.3f} s ({ours / size * 1e6:6.1f} us a "
            f"reader)  bare update {bare:8.3f} s"
        )
    ours, bare = figures[sizes[-1]]
    print(f"sweep_vs_update {bare / ours:.2f}")


if __name__ == "__main__":
    main()
