"""Eight workers of one session each against one worker of eight sessions, over a slow relay.

`bench/dispatch.py --latency-ms 20` compares eight SMTP sessions of one worker with one
session. Eight sessions share one interpreter (and its lock); several `drip worker`s on one
PostgreSQL share nothing but the database. This bench runs, against the same sink (20 ms
before each reply by default) and the same due readers:

1. one worker, one session (DRIP_SMTP_CONNECTIONS=1);
2. one worker, eight sessions;
3. eight worker processes of one session each, their passes started together (each claims
   its own batches: SKIP LOCKED).

Each worker first runs a pass at an instant nothing is due, unmeasured, which compiles and
prepares the pass's statements (as bench/dispatch.py's warm-up does). It prints each rate,
how many readers each of the eight workers sent to, `sessions_8_vs_1` and
`workers_8_vs_1`: were the second clearly the larger, the interpreter lock would be what
eight sessions of one worker wait for (stop 33: 6.42 and 6.38, it is not).

    .venv/bin/python bench/workers.py --database-url postgresql+psycopg://postgres@/bench

PostgreSQL only (SQLite lets one worker dispatch at a time). Its drip tables are EMPTIED.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from common import bench_settings, reset, say
from dispatch import NOW, SLUG, Sink, load

from drip.services import Services, build_services

NOTHING_DUE = NOW.replace(year=NOW.year - 2)


def services(tmp: str, url: str, sink: str, connections: int) -> Services:
    settings = bench_settings(
        tmp,
        url,
        smtp_url=sink,
        allow_unsafe_sending=True,
        smtp_connections=connections,
        postal_address="1 Bench Road",
    )
    return build_services(settings, clock=lambda: NOW)


def worker(tmp: str, url: str, sink: str, connections: int) -> Services:
    """drip as a running worker is: its pass's statements compiled and prepared."""
    svc = services(tmp, url, sink, connections)
    svc.dispatcher().run_pass(NOTHING_DUE)
    return svc


def one_of_many(
    tmp: str, url: str, sink: str, start: Barrier, ends: Queue[tuple[float, int]]
) -> None:
    """A worker process: warm, wait for the others, one pass; when it ended, and its sends."""
    svc = worker(tmp, url, sink, 1)
    start.wait()
    report = svc.dispatcher().run_pass(NOW)
    ends.put((time.perf_counter(), report.count("sent")))
    svc.engine.dispose()


def due(tmp: str, url: str, sink: str, readers: int) -> None:
    svc = services(tmp, url, sink, 1)
    reset(svc.engine)
    load(svc.engine, 1, readers, readers, svc.content.library().sequences[SLUG])
    svc.engine.dispose()


def in_one(tmp: str, url: str, sink: str, readers: int, connections: int) -> float:
    """Seconds for one worker of `connections` sessions to send to `readers`."""
    due(tmp, url, sink, readers)
    svc = worker(tmp, url, sink, connections)
    began = time.perf_counter()
    sent = svc.dispatcher().run_pass(NOW).count("sent")
    took = time.perf_counter() - began
    svc.engine.dispose()
    if sent != readers:
        raise SystemExit(f"expected {readers} sent, got {sent}")
    say(f"1 worker, {connections} session(s): {readers / took:,.0f} messages/s")
    return took


def in_many(tmp: str, url: str, sink: str, readers: int, workers: int) -> float:
    """Seconds from the start of `workers` processes' passes to the end of the last."""
    due(tmp, url, sink, readers)
    spawn = multiprocessing.get_context("spawn")
    start, ends = spawn.Barrier(workers + 1), spawn.Queue()
    processes = [
        spawn.Process(target=one_of_many, args=(tmp, url, sink, start, ends))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    start.wait(120)
    began = time.perf_counter()
    finished: list[tuple[float, int]] = [ends.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    sent = sum(count for _, count in finished)
    if sent != readers:
        raise SystemExit(f"expected {readers} sent, got {sent}")
    took = max(end for end, _ in finished) - began
    shares = sorted(count for _, count in finished)
    say(f"{workers} workers, 1 session each: {readers / took:,.0f} messages/s (sent {shares})")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="PostgreSQL; emptied first")
    parser.add_argument("--readers", type=int, default=1600)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    sink = Sink(args.latency_ms)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            one = in_one(tmp, args.database_url, sink.url, args.readers, 1)
            sessions = in_one(tmp, args.database_url, sink.url, args.readers, args.workers)
            workers = in_many(tmp, args.database_url, sink.url, args.readers, args.workers)
    finally:
        sink.stop()
    n = args.workers
    print(f"latency {args.latency_ms:g} ms per reply; {args.readers:,} lessons")
    print(
        f"1 session {args.readers / one:,.0f}/s; 1 worker of {n} sessions "
        f"{args.readers / sessions:,.0f}/s; {n} workers of 1 {args.readers / workers:,.0f}/s"
    )
    print(f"sessions_{n}_vs_1 {one / sessions:.2f}")
    print(f"workers_{n}_vs_1 {one / workers:.2f}")


if __name__ == "__main__":
    main()
