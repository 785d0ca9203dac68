"""The statements a piece of work runs, and what SQLite's planner does for them: the tests
that count a pass's statements, and those that pin a question to its index, read them with
these."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Each statement run on `engine` meanwhile, with its parameters, in order."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@contextmanager
def plans(engine: Engine) -> Iterator[list[str]]:
    """What SQLite's planner does for each SELECT run meanwhile, a line per step."""
    steps: list[str] = []
    with statements(engine) as seen:
        yield steps
    selects = [
        (statement, params)
        for statement, params in seen
        if statement.lstrip().upper().startswith(("SELECT", "WITH"))
    ]
    with engine.connect() as conn:
        for statement, params in selects:
            explained = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            steps.extend(row[3] for row in explained)
