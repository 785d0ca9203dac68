"""The fast path for the statements a pass runs once per message (bench/dispatch.py).

Measured on SQLite, SQLAlchemy's bookkeeping around an execution (about 70 µs) cost more
than the statement itself. `Direct` compiles a statement once with SQLAlchemy and runs it on
the driver's own cursor; the SQL and every parameter conversion (UTC datetimes, enums) still
come from the compiled statement. It reads compiler internals (`binds`, `positiontup`),
which is why pyproject.toml bounds SQLAlchemy's version, and why
tests/dispatch/test_dispatch_direct.py runs each statement both ways and compares the rows.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


class Direct:
    """A statement compiled once by SQLAlchemy and run on a DB-API cursor."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        self.compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = self.compiled.string
        self.order = self.compiled.positiontup  # None for named parameter styles
        self.fixed: dict[str, Any] = {}  # the statement's constants, converted once
        self.variable: list[tuple[str, Callable[[Any], Any] | None]] = []
        for name, bind in self.compiled.binds.items():
            # the dialect's own processor, as SQLAlchemy runs it (SQLite: text with microseconds)
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                self.variable.append((name, process))
            else:
                value = process(bind.value) if process else bind.value
                self.fixed[name] = _plain(value)

    def run(self, cursor: Any, params: dict[str, Any]) -> Any:
        cursor.execute(self.sql, self.values(params))
        return cursor

    def values(self, params: dict[str, Any]) -> Any:
        """The parameters as the driver takes them: by name, or in order for a positional
        style."""
        values = self.fixed.copy()
        for name, process in self.variable:
            values[name] = params[name] if process is None else process(params[name])
        return values if self.order is None else [values[name] for name in self.order]


def _plain(value: Any) -> Any:
    """A StrEnum as the str it stands for: drivers adapt exact types only."""
    return value.value if isinstance(value, enum.Enum) else value
