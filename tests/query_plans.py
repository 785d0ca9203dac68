"""What SQLite's planner does for the statements a piece of work runs: the tests that pin a
question to its index read the plans with this."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


@contextmanager
def plans(engine: Engine) -> Iterator[list[str]]:
    """What SQLite's planner does for each SELECT run meanwhile, a line per step."""
    steps: list[str] = []
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, params))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield steps
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    with engine.connect() as conn:
        for statement, params in statements:
            explained = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            steps.extend(row[3] for row in explained)
