"""What the benches share: progress on stderr, emptying their own database, PostgreSQL's
COPY for bulk loads, and sizes printed short (100k, 1m)."""

from __future__ import annotations

import json
import sys
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from drip.store.models import Base


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
