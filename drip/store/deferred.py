"""A statement sent to PostgreSQL whose answer is read later: the server runs it, and
flushes its WAL at the commit, while the sender builds the next message and talks to the
relay. A thread did that before, and lost on a quiet two-core machine what it gained: it
fought the sending thread for the interpreter lock (bench/PROFILE.md).

The statement goes through libpq's asynchronous calls, which psycopg exposes (`pgconn`):
one Bind/Execute/Sync, so it runs on its own, atomic, committed at its end, as psycopg's
autocommit would run it. It is prepared once on each connection (planning it took longer
than running it), its SQL and conversions come from SQLAlchemy, compiled once for libpq's
placeholders ($1, $2, ...), and psycopg's own `Transformer` adapts its parameters. Between
`send` and `Pending.result` the connection is busy: nothing else may use it.

Behind a pooler in transaction mode (DRIP_DATABASE_POOLER, drip.store.db.make_engine: the
connection's `prepare_threshold` is None) the statement is sent unnamed, parsed with its
parameters in the same message: a name prepared on one server connection is unknown on the
next the pooler hands out.
"""

from __future__ import annotations

import hashlib
import select
import weakref
from collections.abc import Sequence
from typing import Any, cast

import psycopg
from psycopg import abc, pq
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from drip.store.direct import Direct

Driver = psycopg.Connection[Any]

# The statements each connection has prepared, as far as drip knows: psycopg deallocates
# them all when it rolls back after preparing its own (`Pending.result` prepares again).
_PREPARED: weakref.WeakKeyDictionary[Driver, set[bytes]] = weakref.WeakKeyDictionary()


class Deferred:
    """One statement, compiled once, sent without waiting for its answer."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        numbered: Dialect = cast(Any, type(dialect))(paramstyle="numeric_dollar")  # $1, $2, ...
        self.direct = Direct(statement, numbered)
        self.sql = self.direct.sql.encode()
        # The same SQL, the same name, on whichever connection prepared it.
        self.name = b"drip_" + hashlib.sha256(self.sql).hexdigest()[:24].encode()

    def send(self, driver: Driver, params: dict[str, Any]) -> Pending:
        """Send the statement; its answer waits on the connection for `Pending.result`."""
        values = self.direct.values(params)
        adapt = Transformer.from_context(driver)
        # As text: the server reads each as the type the statement gave it when prepared.
        dumped = adapt.dump_sequence(values, [PyFormat.TEXT] * len(values))
        pending = Pending(self, driver, adapt, dumped)
        pending.send()
        return pending

    def prepare(self, driver: Driver, adapt: abc.Transformer) -> None:
        prepared = _PREPARED.setdefault(driver, set())
        if self.name not in prepared:
            _check(driver.pgconn.prepare(self.name, self.sql), adapt)
            prepared.add(self.name)


class Pending:
    """A statement sent, its answer not read yet."""

    def __init__(
        self,
        deferred: Deferred,
        driver: Driver,
        adapt: abc.Transformer,
        dumped: Sequence[abc.Buffer | None],
    ) -> None:
        self.deferred, self.driver, self.adapt, self.dumped = deferred, driver, adapt, dumped

    def send(self) -> None:
        formats = self.adapt.formats
        if self.driver.prepare_threshold is None:  # a pooler: nothing prepared by name
            self.driver.pgconn.send_query_params(
                self.deferred.sql, self.dumped, param_formats=formats
            )
            return
        self.deferred.prepare(self.driver, self.adapt)
        self.driver.pgconn.send_query_prepared(
            self.deferred.name, self.dumped, param_formats=formats
        )

    def result(self) -> tuple[Any, ...] | None:
        """Wait for the statement's answer: its first row (None if it has none); raises the
        error psycopg would have raised. Afterwards the connection is free again."""
        try:
            last = self._wait()
        except psycopg.errors.InvalidSqlStatementName:
            # Deallocated since it was prepared, so it did not run: prepare it, run it again.
            _PREPARED.get(self.driver, set()).discard(self.deferred.name)
            self.send()
            last = self._wait()
        if not last.ntuples:
            return None
        self.adapt.set_pgresult(last)
        return tuple(self.adapt.load_row(0, tuple))

    def _wait(self) -> pq.abc.PGresult:
        pgconn = self.driver.pgconn
        pgconn.consume_input()
        if pgconn.is_busy():
            # poll(2): one system call a wait, where an epoll selector makes four (7.5 µs
            # against 0.8 a record; bench/PROFILE.md, stop 34).
            waiting = select.poll()
            waiting.register(pgconn.socket, select.POLLIN)
            while pgconn.is_busy():
                waiting.poll()
                pgconn.consume_input()
        results = []
        while (result := pgconn.get_result()) is not None:
            results.append(result)
        for result in results:
            _check(result, self.adapt)
        return results[-1]


def _check(result: pq.abc.PGresult, adapt: abc.Transformer) -> None:
    """Raise the error psycopg would have raised for a failed `result`."""
    if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        raise psycopg.errors.error_from_result(result, encoding=adapt.encoding)
