"""What the tally triggers cost a hand-off on PostgreSQL: migration 0023's against 0003's and
against none, in one run, with the disk left out.

Each hand-off's outcome is one UPDATE of its delivery (`sending` -> `sent`), committed on its
own as the dispatcher does. The same N updates are timed under each set of triggers, in
turns (0003, 0023, none, and again), with `synchronous_commit` off for this bench's
connection only: a commit's flush to disk is the same for all three and, on a shared
machine, noisier than what is measured. Then a batch of N deliveries written as `sending`
in one multi-row INSERT, as the dispatcher writes each batch.

It prints the cost of one update and of one inserted row under each, and
`tally_triggers_0023_vs_0003` (the time the triggers add to an update, 0023's over 0003's).

    .venv/bin/python bench/tallies.py --database-url postgresql+psycopg://postgres@/bench

The drip tables of that database are EMPTIED first.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from common import reset, say
from sqlalchemy import text
from sqlalchemy.engine import Connection

from drip.store.db import MIGRATIONS, make_engine, migrate

NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
ROUNDS = 3


def migration(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, MIGRATIONS / "versions" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(conn: Connection, n: int) -> None:
    conn.execute(
        text(
            "INSERT INTO subscribers (id, email, first_name, timezone, attributes, created_at) "
            "SELECT i, 'r' || i || '@example.org', '', 'UTC', '{}', :now "
            "FROM generate_series(1, :n) AS i"
        ),
        {"n": n, "now": NOW},
    )
    conn.execute(
        text(
            "INSERT INTO enrollments (id, subscriber_id, sequence, status, attempts, created_at, "
            "confirmed_at) SELECT i, i, 'course', 'active', 0, :now, :now "
            "FROM generate_series(1, :n) AS i"
        ),
        {"n": n, "now": NOW},
    )


def inserts(conn: Connection, n: int, lesson: str) -> float:
    """Seconds for one INSERT of n `sending` deliveries, one per enrollment."""
    began = time.perf_counter()
    conn.execute(
        text(
            "INSERT INTO deliveries (enrollment_id, lesson, lesson_version, status, attempts, "
            "message_id, created_at, updated_at) SELECT i, :lesson, 'v', 'sending', 0, "
            "'<' || i || '.' || CAST(:tag AS text) || '>', :now, :now "
            "FROM generate_series(1, :n) AS i"
        ),
        {"n": n, "now": NOW, "lesson": lesson, "tag": lesson},
    )
    return time.perf_counter() - began


def updates(conn: Connection, lesson: str) -> tuple[float, int]:
    """Seconds for marking each of the lesson's deliveries sent, one committed UPDATE each."""
    driver: Any = conn.connection.driver_connection
    ids = [
        row[0] for row in driver.execute("SELECT id FROM deliveries WHERE lesson = %s", (lesson,))
    ]
    driver.commit()
    driver.autocommit = True
    began = time.perf_counter()
    for ident in ids:
        driver.execute(
            "UPDATE deliveries SET status = 'sent', sent_at = %s, updated_at = %s, "
            "attempts = attempts + 1 WHERE id = %s",
            (NOW, NOW, ident),
            prepare=True,
        )
    took = time.perf_counter() - began
    driver.autocommit = False
    return took, len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database of its own")
    parser.add_argument("--messages", type=int, default=2_000)
    args = parser.parse_args()
    engine = make_engine(args.database_url)
    migrate(engine)
    reset(engine)
    old, new = migration("0003_admin_rollups"), migration("0023_cheaper_tallies")
    switch = {  # from the other set of triggers to this one
        "0003": [*new.POSTGRES_DOWN, *old.POSTGRES_UP],
        "0023": new.POSTGRES_UP,
    }
    per_update: dict[str, list[float]] = {name: [] for name in ("0003", "0023", "none")}
    per_insert: dict[str, list[float]] = {name: [] for name in per_update}
    installed = "0023"  # the migrated database's
    with engine.connect() as conn:
        conn.execute(text("SET synchronous_commit = off"))
        load(conn, args.messages)
        conn.commit()
        for round_ in range(ROUNDS):
            for name in per_update:
                say(f"round {round_ + 1}: triggers of {name}")
                if name in switch and name != installed:
                    for statement in switch[name]:
                        conn.execute(text(statement))
                    installed = name
                enabled = "DISABLE" if name == "none" else "ENABLE"
                conn.execute(text(f"ALTER TABLE deliveries {enabled} TRIGGER USER"))
                conn.execute(text("DELETE FROM deliveries"))
                conn.commit()
                lesson = f"l{round_}{name}"
                per_insert[name].append(inserts(conn, args.messages, lesson) / args.messages)
                conn.commit()
                took, count = updates(conn, lesson)
                per_update[name].append(took / count)
        conn.execute(text("ALTER TABLE deliveries ENABLE TRIGGER USER"))
        for statement in switch["0023"] if installed != "0023" else []:
            conn.execute(text(statement))
        conn.commit()
    engine.dispose()
    us = {name: statistics.median(v) * 1e6 for name, v in per_update.items()}
    print(f"{args.messages:,} deliveries; median of {ROUNDS} rounds; synchronous_commit off")
    for name in per_update:
        print(
            f"triggers {name:<4}  update {us[name]:6.0f} us  "
            f"insert {statistics.median(per_insert[name]) * 1e6:6.1f} us a row"
        )
    print(
        f"tally_triggers_0023_vs_0003 "
        f"{(us['0023'] - us['none']) / max(us['0003'] - us['none'], 1e-9):.2f}"
    )


if __name__ == "__main__":
    main()
