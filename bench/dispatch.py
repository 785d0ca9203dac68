"""How fast drip dispatches, against a bare SMTP client, and how a pass grows with the database.

In one run, against a minimal SMTP sink in its own process (bench/sink.py):

1. drip's dispatcher delivers one real lesson to N due readers (10,000): claim, personalise,
   build, send, record;
2. bare smtplib sends N pre-built messages of the same size over one connection;
3. a pass with 1,000 readers due among 100,000 enrollments, then among 1,000,000, in a
   realistic mix: most completed or unsubscribed long ago, some suppressed, the rest active
   and due later (the median of three passes at each size).

It ends with `dispatch_vs_smtplib RATIO` (drip's messages per second over smtplib's;
target >= 0.7) and `pass_1m_vs_100k RATIO` (pass time at 1M over 100k; target <= 1.5).
Beside each rate, the cost of one message in milliseconds.

`--kind broadcast` measures instead a pass sending the copies of one broadcast due to N
readers (`broadcast_vs_smtplib`), `--kind mixed` a pass of lessons, confirmations and a
broadcast's copies (`mixed_vs_smtplib`), each against smtplib sending as many pre-built
messages of the same kinds (bench/dispatch_kinds.py); `--kind all` runs the three in turn.
`--rounds N` measures drip and smtplib in turn N times and prints the median ratio beside
each round's (one pair of passes moves by 0.1-0.2 on a shared machine).
`--profile FILE` writes cProfile's statistics of the (first) measured pass to FILE.
Before any pass is measured, a small one of every kind runs unmeasured (`warm_up`): the
first pass of a process compiles and prepares its statements, which a running worker did
long before.
`--connections N` sets DRIP_SMTP_CONNECTIONS for drip's passes (default: drip's default);
smtplib always sends over one session, as a bare client does.

The sink offers PIPELINING (RFC 2920), as production relays do, and drip uses it: each final
dot with the next message's envelope and DATA in one write, one wait a message. smtplib
never pipelines. `--no-pipelining` takes the offer away, for drip's figure with one wait
per command, as smtplib's.

With `--latency-ms 20` the sink waits 20 ms before each reply, like a relay across a
network, and the bench compares drip with DRIP_SMTP_CONNECTIONS=8 against drip with 1 on
that sink in the same run: `connections_8_vs_1 RATIO` (issue 20: 7.5), for lessons or, with
`--kind broadcast`, a broadcast's copies; then eight bare pipelining clients against one
(bench/pipelined.py: `bare_8_vs_1`, what the sink and one interpreter allow). With
`--rounds N`, each of the four is measured N times in turns, and the medians count.

    .venv/bin/python bench/dispatch.py                       # SQLite in a temporary folder
    .venv/bin/python bench/dispatch.py --database-url postgresql+psycopg://postgres@/bench
    .venv/bin/python bench/dispatch.py --quick               # smaller sizes, a quick look
    .venv/bin/python bench/dispatch.py --quick --kind all    # lessons, broadcast, mixed

With --database-url, the drip tables of that database are EMPTIED first.
"""

from __future__ import annotations

import argparse
import functools
import operator
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import dispatch_kinds as kinds
import pipelined
from common import (
    OTHERS,
    PROFILE,
    Cpu,
    Measured,
    bench_settings,
    copy_rows,
    postgres_pids,
    reset,
    say,
    short,
    timed,
)
from sqlalchemy import DateTime, Table, func, insert, literal, select, text, update
from sqlalchemy.engine import Engine

from drip.content.sequences import Sequence
from drip.mail.message_ids import message_id_for
from drip.mail.render import Reader
from drip.services import Services, build_services
from drip.store.models import (
    Broadcast,
    BroadcastRecipient,
    Delivery,
    EngagementSweep,
    Enrollment,
    Event,
    EventKind,
    Subscriber,
)

NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # 09:00 in New York, inside the window
LONG_AGO = NOW - timedelta(days=400)
SLUG = "interview-questions"
CHUNK = 20_000
PASSES = 3  # passes measured at each size; the median counts
S = cast(Table, Subscriber.__table__)
E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)
B = cast(Table, Broadcast.__table__)
R = cast(Table, BroadcastRecipient.__table__)
EV = cast(Table, Event.__table__)
SWEEPS = cast(Table, EngagementSweep.__table__)


class Sink:
    """bench/sink.py in its own process, so it never competes with the client for the GIL."""

    def __init__(self, latency_ms: float = 0.0, *, pipelining: bool = True) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("sink.py")),
                "--latency-ms",
                str(latency_ms),
                *([] if pipelining else ["--no-pipelining"]),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if not line or line[0] != "listening":
            raise SystemExit("the SMTP sink did not start")
        self.port = int(line[1])
        OTHERS["sink"] = lambda: [self.process.pid]

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _kind(i: int, due_every: int) -> str:
    """Where enrollment `i` stands: a fixed, realistic mix, the due ones spread evenly."""
    if i % due_every == 0:
        return "due"
    bucket = i % 20
    if bucket < 12:
        return "completed"
    if bucket < 17:
        return "unsubscribed"
    if bucket == 17:
        return "suppressed"
    return "later"


def _rows(
    first: int,
    count: int,
    due: int,
    sequence: Sequence,
    due_times: list[datetime],
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]]:
    """(subscribers, enrollments, deliveries) rows in chunks; ids from `first`. The due
    readers fall due in turn at each of `due_times`, a minute before it."""
    welcome, lesson = sequence.lessons[0], sequence.lessons[1]
    due_every = max(count // due, 1) if due else count + 1
    due_left = due
    for start in range(0, count, CHUNK):
        people: list[dict[str, Any]] = []
        enrolled: list[dict[str, Any]] = []
        sent: list[dict[str, Any]] = []
        for offset in range(start, min(start + CHUNK, count)):
            ident = first + offset
            kind = _kind(offset, due_every)
            if kind == "due":
                kind = "due" if due_left > 0 else "completed"
                due_left -= 1
            people.append(
                {
                    "id": ident,
                    "email": f"reader{ident:07d}@example.org",
                    "first_name": f"Reader{ident}",
                    "timezone": "America/New_York",
                    "attributes": {},
                    "created_at": LONG_AGO,
                    "suppressed_at": LONG_AGO if kind == "suppressed" else None,
                    "suppressed_reason": "550 no such user" if kind == "suppressed" else None,
                }
            )
            row: dict[str, Any] = {
                "id": ident,
                "subscriber_id": ident,
                "sequence": SLUG,
                "attempts": 0,
                "created_at": LONG_AGO,
                "confirmed_at": LONG_AGO,
                "next_lesson": None,
                "due_at": None,
                "last_sent_at": LONG_AGO,
                "completed_at": None,
                "unsubscribed_at": None,
                "status": kind,
            }
            if kind == "due":
                row.update(
                    status="active",
                    next_lesson=lesson.key,
                    due_at=due_times[due_left % len(due_times)] - timedelta(minutes=1),
                    last_sent_at=NOW - timedelta(days=2),
                )
                sent.append(
                    {
                        "enrollment_id": ident,
                        "lesson": welcome.key,
                        "lesson_version": welcome.version,
                        "status": "sent",
                        "attempts": 1,
                        "message_id": f"<drip.{ident}.{welcome.key}@bench>",
                        "created_at": NOW - timedelta(days=2),
                        "updated_at": NOW - timedelta(days=2),
                        "sent_at": NOW - timedelta(days=2),
                    }
                )
            elif kind == "later":
                row.update(
                    status="active",
                    next_lesson=lesson.key,
                    due_at=NOW + timedelta(days=1, minutes=offset % 10_000),
                )
            elif kind == "completed":
                row.update(completed_at=LONG_AGO)
            elif kind == "unsubscribed":
                row.update(unsubscribed_at=LONG_AGO)
            enrolled.append(row)
        yield people, enrolled, sent


def load(
    engine: Engine,
    first: int,
    count: int,
    due: int,
    sequence: Sequence,
    due_times: list[datetime] | None = None,
    history: bool = False,
) -> None:
    """Bulk-load `count` enrollments (and their subscribers), `due` of them due at NOW or,
    in equal shares, at each of `due_times`; with `history`, each reader's past too
    (`add_history`)."""
    done = 0
    began = time.perf_counter()
    postgres = engine.dialect.name == "postgresql"
    for people, enrolled, sent in _rows(first, count, due, sequence, due_times or [NOW]):
        with engine.begin() as conn:
            if postgres:
                copy_rows(conn.connection.driver_connection, "subscribers", people)
                copy_rows(conn.connection.driver_connection, "enrollments", enrolled)
            else:
                conn.execute(insert(S), people)
                conn.execute(insert(E), enrolled)
            if sent:
                conn.execute(insert(D), sent)
        done += len(enrolled)
        say(f"  loaded {done:,}/{count:,} enrollments ({time.perf_counter() - began:.0f} s)")
    if history:
        add_history(engine, first, first + count - 1)
    # Leave the database as a running one would be, so the pass measured next does not pay
    # for the load: statistics gathered, and on PostgreSQL vacuumed (no autovacuum racing the
    # pass), on SQLite the load's write-ahead log folded into the database.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if postgres:
            for table in ("subscribers", "enrollments"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
            loaded = "subscribers, enrollments, deliveries, broadcast_recipients, events"
            conn.execute(text(f"VACUUM (ANALYZE) {loaded}"))
        else:
            conn.execute(text("ANALYZE"))
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    if not postgres:
        # A SQLite connection keeps the statistics it loaded when it opened: without this,
        # the pass would plan with those of the warm-up's few rows. (PostgreSQL's sessions
        # see new statistics, and keep the statements the warm-up prepared on them.)
        engine.dispose()


def drip_kind(
    svc: Services, sequence: Sequence, kind: str, readers: int
) -> tuple[Measured, Broadcast, tuple[int, int, int]]:
    """(time and CPU, the broadcast, (lessons, confirmations, copies)) of one pass sending
    `readers` messages of `kind` (see `bench_kind`)."""
    reset(svc.engine)
    copies = readers if kind == "broadcast" else readers // 4
    confirmations = 0 if kind == "broadcast" else readers // 4
    lessons = readers - copies - confirmations
    if lessons:
        load(svc.engine, 1, lessons, lessons, sequence)
    first = lessons + 1
    kinds.load_readers(svc.engine, first, confirmations, SLUG, NOW, "pending")
    kinds.load_readers(svc.engine, first + confirmations, copies, SLUG, NOW, "completed")
    broadcast = kinds.schedule_broadcast(svc, NOW)
    measured, report = timed(
        f"one pass: {lessons:,} lessons, {confirmations:,} confirmations, {copies:,} copies",
        lambda: svc.dispatcher().run_pass(NOW),
    )
    if report.count("sent") != readers:
        raise SystemExit(f"expected {readers} sent, got: {report.summary()}")
    return measured, broadcast, (lessons, confirmations, copies)


def bench_kind(
    svc: Services, sequence: Sequence, kind: str, readers: int, port: int
) -> tuple[Measured, Measured]:
    """(drip's time and CPU, smtplib's) for a pass sending `readers` messages of `kind`:
    `broadcast` (every one a broadcast's copy) or `mixed` (half lessons, a quarter
    confirmations, a quarter broadcast copies)."""
    drip, broadcast, (lessons, confirmations, copies) = drip_kind(svc, sequence, kind, readers)
    lesson = kinds.lesson_template(svc, sequence)
    bare = kinds.bare_smtplib(
        port,
        svc,
        NOW,
        [(lesson, lessons + confirmations), (kinds.broadcast_template(svc, broadcast), copies)],
    )
    return drip, bare


def warm_up(svc: Services, sequence: Sequence) -> None:
    """A small pass of every kind, not measured: a worker's first pass compiles each
    statement it runs (SQLAlchemy keeps them per engine) and prepares them on PostgreSQL,
    which a running worker did long before the pass a bench measures."""
    drip_kind(svc, sequence, "mixed", 8)


def bench_dispatch(svc: Services, sequence: Sequence, readers: int) -> tuple[Measured, bytes]:
    """(time and CPU, one of the messages as sent) for one pass over `readers` due readers."""
    reset(svc.engine)
    load(svc.engine, 1, readers, readers, sequence)
    dispatcher = svc.dispatcher()
    measured, report = timed(f"dispatching {readers:,} messages", lambda: dispatcher.run_pass(NOW))
    if report.count("sent") != readers:
        raise SystemExit(f"expected {readers} sent, got: {report.summary()}")
    template = svc.renderer.lesson(sequence, sequence.lessons[1])
    sample = template.build(
        Reader("reader0000001@example.org", "Reader1", 1, 1),
        svc.links,
        message_id_for(
            svc.settings.secret_key,
            1,
            sequence.lessons[1].key,
            template.sender,
            svc.renderer.domain,
        ),
        NOW,
    )
    return measured, sample


def bench_smtplib(port: int, svc: Services, sequence: Sequence, count: int) -> Measured:
    """Bare smtplib: the same number of messages, built beforehand, over one connection."""
    return kinds.smtplib_sends(port, prebuilt(svc, sequence, count))


def prebuilt(svc: Services, sequence: Sequence, count: int) -> list[tuple[str, bytes]]:
    """`count` (recipient, message) of the lesson drip sends, built beforehand."""
    template = svc.renderer.lesson(sequence, sequence.lessons[1])
    return [
        (
            f"reader{n:07d}@example.org",
            template.build(
                Reader(f"reader{n:07d}@example.org", f"Reader{n}", n, n),
                svc.links,
                message_id_for(
                    svc.settings.secret_key, n, "smtplib", template.sender, svc.renderer.domain
                ),
                NOW,
            ),
        )
        for n in range(1, count + 1)
    ]


HISTORY_EVENTS = 3  # events on each reader's timeline, long ago


def add_history(engine: Engine, first: int, last: int) -> None:
    """What readers of a running drip have behind them, long before the pass: a broadcast's
    copy each and HISTORY_EVENTS clicks on their timeline. A pass must read none of it: a
    question that reads a whole table shows as a pass that grows with the database."""
    at = literal(LONG_AGO, DateTime(timezone=True))
    readers = E.c.id.between(first, last)
    with engine.begin() as conn:
        broadcast = conn.execute(
            insert(B)
            .values(
                name="long ago",
                subject="Long ago",
                body="Long ago.",
                audience={},
                send_at=LONG_AGO,
                status="sent",
                created_at=LONG_AGO,
            )
            .returning(B.c.id)
        ).scalar_one()
        conn.execute(
            insert(R).from_select(
                [
                    "broadcast_id",
                    "subscriber_id",
                    "enrollment_id",
                    "status",
                    "due_at",
                    "attempts",
                    "sent_at",
                ],
                select(
                    literal(broadcast),
                    E.c.subscriber_id,
                    E.c.id,
                    literal("sent"),
                    at,
                    literal(1),
                    at,
                ).where(readers),
            )
        )
        for _ in range(HISTORY_EVENTS):
            conn.execute(
                insert(EV).from_select(
                    ["subscriber_id", "enrollment_id", "kind", "at", "detail"],
                    select(
                        E.c.subscriber_id, E.c.id, literal(EventKind.CLICKED.value), at, literal("")
                    ).where(readers),
                )
            )
        # Swept long ago too: the sweep's cursor (if a pass made it) is past them.
        conn.execute(update(SWEEPS).values(event_id=select(func.max(EV.c.id)).scalar_subquery()))
    say(f"  and each reader's history: a broadcast's copy, {HISTORY_EVENTS} clicks")


def bench_pass(
    svc: Services, sequence: Sequence, small: int, large: int, due: int
) -> tuple[float, float]:
    """A pass with `due` readers due among `small`, then among `large` enrollments: the
    median of PASSES passes each (an hour apart, each with its own readers due), as one
    pass of a second or two is at the mercy of whatever else the machine is doing."""
    reset(svc.engine)
    first = [NOW + timedelta(hours=n) for n in range(PASSES)]
    later = [NOW + timedelta(hours=PASSES + n) for n in range(PASSES)]
    say(f"loading {small:,} enrollments, {due:,} due at each of {PASSES} passes")
    load(svc.engine, 1, small, due * PASSES, sequence, first, history=True)
    small_seconds = statistics.median(
        _one_pass(svc, f"one pass, {due:,} due among {small:,}", due, at) for at in first
    )
    say(f"growing to {large:,} enrollments, {due:,} newly due at each of {PASSES} passes")
    load(svc.engine, small + 1, large - small, due * PASSES, sequence, later, history=True)
    large_seconds = statistics.median(
        _one_pass(svc, f"one pass, {due:,} due among {large:,}", due, at) for at in later
    )
    return small_seconds, large_seconds


def _one_pass(svc: Services, label: str, due: int, at: datetime) -> float:
    measured, report = timed(label, lambda: svc.dispatcher().run_pass(at))
    if report.count("sent") != due:
        raise SystemExit(f"expected {due} sent, got: {report.summary()}")
    return measured.seconds


def bench_connections(
    tmp: str,
    url: str,
    latency_ms: float,
    readers: int,
    pipelining: bool,
    kind: str,
    rounds: int,
) -> dict[str, float]:
    """Seconds for `readers` messages of `kind` (lessons, or a broadcast's copies) to a
    sink that waits `latency_ms` before each reply, the median of `rounds`: "drip 1" and
    "drip 8" SMTP connections, then "bare 1" and "bare 8" pipelining clients
    (bench/pipelined.py) sending the lesson, in turns each round."""
    sink = Sink(latency_ms, pipelining=pipelining)
    times: dict[str, list[float]] = {}
    messages: list[tuple[str, bytes]] = []
    try:
        for _ in range(rounds):
            for connections in (1, 8):
                took, built = _over(tmp, url, sink, connections, readers, kind)
                messages = messages or built
                times.setdefault(f"drip {connections}", []).append(took)
            for connections in (1, 8) if pipelining else ():
                took = pipelined.sessions(sink.port, messages, connections)
                say(f"bare, {connections}: {readers / took:,.0f} messages/s")
                times.setdefault(f"bare {connections}", []).append(took)
    finally:
        sink.stop()
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def _over(
    tmp: str, url: str, sink: Sink, connections: int, readers: int, kind: str
) -> tuple[float, list[tuple[str, bytes]]]:
    """One pass of drip over `connections` sessions: its seconds, and the lesson built for
    the bare clients."""
    settings = bench_settings(
        tmp,
        url,
        smtp_url=sink.url,
        allow_unsafe_sending=True,
        smtp_connections=connections,
        postal_address="1 Bench Road",
    )
    svc = build_services(settings, clock=lambda: NOW)
    sequence = svc.content.library().sequences[SLUG]
    try:
        warm_up(svc, sequence)
        if kind == "broadcast":
            measured, _, _ = drip_kind(svc, sequence, kind, readers)
        else:
            measured, _ = bench_dispatch(svc, sequence, readers)
        built = prebuilt(svc, sequence, readers)
    finally:
        svc.engine.dispose()
    say(f"{connections} connection(s): {readers / measured.seconds:,.0f} messages/s")
    return measured.seconds, built


def show_rates(name: str, rounds: list[tuple[Measured, Measured]], readers: int) -> None:
    """Each side's rate (the median round's) and its CPU a message (over every round)."""
    drip_s = statistics.median(drip.seconds for drip, _ in rounds)
    bare_s = statistics.median(bare.seconds for _, bare in rounds)
    print(
        f"{name:<9} drip {readers / drip_s:,.0f}/s ({drip_s / readers * 1000:.2f} ms a "
        f"message), smtplib {readers / bare_s:,.0f}/s ({bare_s / readers * 1000:.2f} ms)"
        + (f", medians of {len(rounds)} rounds" if len(rounds) > 1 else "")
    )
    sent = readers * len(rounds)
    print(f"{'':<9} drip {sum_cpu(d for d, _ in rounds).per(sent)}")
    print(f"{'':<9} smtplib {sum_cpu(b for _, b in rounds).per(sent)}")


def sum_cpu(measured: Iterable[Measured]) -> Cpu:
    return functools.reduce(operator.add, (m.cpu for m in measured))


def show_ratios(name: str, rounds: list[tuple[Measured, Measured]]) -> None:
    """`NAME_vs_smtplib`, the ratio of the rates (the median round's), and
    `NAME_cpu_vs_smtplib`, smtplib's CPU a message over drip's (every round's)."""
    ratios = sorted(bare.seconds / drip.seconds for drip, bare in rounds)
    spread = f"  (rounds: {', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""
    print(f"{name}_vs_smtplib {statistics.median(ratios):.2f}{spread}")
    drip_cpu, bare_cpu = sum_cpu(d for d, _ in rounds), sum_cpu(b for _, b in rounds)
    print(f"{name}_cpu_vs_smtplib {bare_cpu.total / drip_cpu.total:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        help="a database of its own (emptied first); default: SQLite in a temporary folder",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2,000 readers and 10k vs 100k enrollments, for a quick look",
    )
    parser.add_argument("--readers", type=int, help="due readers for parts 1 and 2")
    parser.add_argument(
        "--latency-ms",
        type=float,
        help="only compare 8 SMTP connections with 1 on a sink this slow",
    )
    parser.add_argument(
        "--kind",
        choices=["lessons", "broadcast", "mixed", "all"],
        default="lessons",
        help="what the measured pass sends (lessons: also the pass at two sizes)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        help="DRIP_SMTP_CONNECTIONS for the measured passes (default: drip's own default)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure drip and smtplib in turn this many times; each ratio is their median",
    )
    parser.add_argument("--profile", help="write cProfile's statistics of the first pass here")
    parser.add_argument(
        "--no-pipelining",
        dest="pipelining",
        action="store_false",
        help="the sink does not offer PIPELINING: each command waits for its answer",
    )
    args = parser.parse_args()
    if args.latency_ms:
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
            count = args.readers or 800
            kind = "broadcast" if args.kind == "broadcast" else "lessons"
            took = bench_connections(
                tmp, url, args.latency_ms, count, args.pipelining, kind, args.rounds
            )
        one, eight = took["drip 1"], took["drip 8"]
        print(
            f"latency {args.latency_ms:g} ms per reply; {count:,} messages ({kind}); "
            f"medians of {args.rounds} round(s)"
        )
        print(f"1 connection   {count / one:,.0f}/s; 8 connections {count / eight:,.0f}/s")
        if "bare 8" in took:
            bare_one, bare_eight = took["bare 1"], took["bare 8"]
            print(
                f"bare pipelining clients (bench/pipelined.py): 1 {count / bare_one:,.0f}/s; "
                f"8 {count / bare_eight:,.0f}/s; bare_8_vs_1 {bare_one / bare_eight:.2f}"
            )
        print(f"connections_8_vs_1 {one / eight:.2f}")
        return
    readers = args.readers or (2_000 if args.quick else 10_000)
    small, large = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    sink = Sink(pipelining=args.pipelining)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
        if not url.startswith("sqlite"):
            OTHERS["database"] = postgres_pids
        settings = bench_settings(
            tmp,
            url,
            smtp_url=sink.url,
            allow_unsafe_sending=True,
            **({"smtp_connections": args.connections} if args.connections else {}),
        )
        svc = build_services(settings, clock=lambda: NOW)
        sequence = svc.content.library().get(SLUG)
        if sequence is None:
            raise SystemExit(f"sequence {SLUG} not found in {settings.sequences_dir}")
        figures: dict[str, list[tuple[Measured, Measured]]] = {}  # (drip, smtplib) a round
        try:
            warm_up(svc, sequence)
            if args.profile:  # the first pass measured, not the warm-up's
                PROFILE.append(args.profile)
            for _ in range(args.rounds):  # drip and smtplib in turn, each round
                if args.kind in ("lessons", "all"):
                    drip, sample = bench_dispatch(svc, sequence, readers)
                    say(f"a lesson as sent: {len(sample):,} bytes")
                    bare = bench_smtplib(sink.port, svc, sequence, readers)
                    figures.setdefault("dispatch", []).append((drip, bare))
                for kind in ("broadcast", "mixed"):
                    if args.kind in (kind, "all"):
                        figures.setdefault(kind, []).append(
                            bench_kind(svc, sequence, kind, readers, sink.port)
                        )
            if args.kind == "lessons":
                small_s, large_s = bench_pass(svc, sequence, small, large, 1_000)
        finally:
            svc.engine.dispose()
            sink.stop()
    offered = "offers" if args.pipelining else "does not offer"
    print(
        f"backend {svc.engine.dialect.name}; {readers:,} messages a figure; "
        f"drip over {settings.smtp_connections} SMTP session(s), smtplib over 1; "
        f"the sink {offered} PIPELINING"
    )
    for name, rounds in figures.items():
        show_rates(name, rounds, readers)
    if args.kind == "lessons":
        print(
            f"pass      1,000 due among {small:,}: {small_s:.3f} s (median of {PASSES}); "
            f"among {large:,}: {large_s:.3f} s"
        )
    for name, rounds in figures.items():
        show_ratios(name, rounds)
    if args.kind == "lessons":
        print(f"pass_{short(large)}_vs_{short(small)} {large_s / small_s:.2f}")


if __name__ == "__main__":
    main()
