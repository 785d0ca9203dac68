"""What the benches share: drip's settings on a migrated database, progress on stderr,
emptying their own database, PostgreSQL's COPY for bulk loads, sizes printed short
(100k, 1m), and timing a piece of work with the CPU it cost each process."""

from __future__ import annotations

import cProfile
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from drip.core.config import PROJECT_ROOT, Settings, load_settings
from drip.store.db import make_engine, migrate
from drip.store.models import Base


def bench_settings(tmp: str, url: str, **overrides: Any) -> Settings:
    """drip's settings for a bench on `url`, migrated first: its data under `tmp`, the
    project's sequences, a postal address for the footers; `overrides` win."""
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return load_settings(
        **{
            "environ": {},
            "data_dir": Path(tmp) / "data",
            "database_url": url,
            "base_url": "https://drip.example.org",
            "secret_key": "bench",
            "sequences_dir": PROJECT_ROOT / "sequences",
            "postal_address": "1 Bench Road, Testville",
            **overrides,
        }
    )


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def reset(engine: Engine) -> None:
    """Empty every drip table (the database is the bench's own)."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


def copy_rows(connection: Any, table: str, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL's COPY: the fastest way in, one chunk at a time."""
    columns = list(rows[0])
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([json.dumps(v) if isinstance(v, dict) else v for v in row.values()])


def short(n: int) -> str:
    return f"{n // 1_000_000}m" if n >= 1_000_000 else f"{n // 1_000}k"


PROFILE: list[str] = []  # --profile FILE: the first piece of work timed is profiled into FILE
# Other processes whose CPU `timed` reports, by name: each gives its process ids now.
OTHERS: dict[str, Callable[[], Iterable[int]]] = {}


@dataclass(frozen=True)
class Cpu:
    """CPU seconds, user and system, spent by this process (every thread) and by the
    processes in OTHERS (the SMTP sink; PostgreSQL's, where the bench runs on it).

    On a shared machine a rate moves with whatever else runs; the CPU a piece of work
    costs moves much less, so it tells whether a change made the work cheaper."""

    here: float
    others: dict[str, float]

    @classmethod
    def now(cls) -> Cpu:
        return cls(
            time.process_time(),
            {name: sum(map(_spent, pids())) for name, pids in OTHERS.items()},
        )

    def __sub__(self, before: Cpu) -> Cpu:
        return Cpu(
            self.here - before.here,
            {name: spent - before.others.get(name, 0.0) for name, spent in self.others.items()},
        )

    def __add__(self, other: Cpu) -> Cpu:
        names = sorted(self.others.keys() | other.others.keys())
        return Cpu(
            self.here + other.here,
            {n: self.others.get(n, 0.0) + other.others.get(n, 0.0) for n in names},
        )

    @property
    def total(self) -> float:
        return self.here + sum(self.others.values())

    def per(self, count: int) -> str:
        """Milliseconds a message, in all and by process."""
        parts = [("this process", self.here), *self.others.items()]
        shown = ", ".join(f"{name} {spent / count * 1000:.2f}" for name, spent in parts)
        return f"{self.total / count * 1000:.2f} ms CPU ({shown})"


def _spent(pid: int) -> float:
    """utime + stime of a process and of its children it has waited for (PostgreSQL's
    postmaster collects its backends' when they exit)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return sum(int(field) for field in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on this host: the bench's server is one of them (on a
    machine that runs nothing else on PostgreSQL meanwhile, the others stay idle)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@dataclass(frozen=True)
class Measured:
    seconds: float
    cpu: Cpu


def timed(label: str, work: Callable[[], Any]) -> tuple[Measured, Any]:
    """(time and CPU spent, result) of `work`, said on stderr first."""
    say(f"{label} ...")
    profiler = cProfile.Profile() if PROFILE else None
    cpu = Cpu.now()
    began = time.perf_counter()
    result = profiler.runcall(work) if profiler is not None else work()
    took = time.perf_counter() - began
    spent = Cpu.now() - cpu
    if profiler is not None:
        profiler.dump_stats(PROFILE.pop())
    return Measured(took, spent), result
