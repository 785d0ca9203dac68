"""What the benches share: drip's settings on a migrated database, progress on stderr,
emptying their own database, PostgreSQL's COPY for bulk loads, and sizes printed short
(100k, 1m)."""

from __future__ import annotations

import json
import sys
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
