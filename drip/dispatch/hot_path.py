"""The one sender's per-message reads and writes on the driver's cursor, from the statements
every producer gives (`Producer.status_read`, `verdict`, `sent`): the lessons' way
(drip.dispatch.send), for every kind.

- The statements are compiled once (drip.store.direct): SQLAlchemy's bookkeeping around
  an execution cost about as much as the statement itself.
- Recording a message handed over reads, in the same transaction, the status of the next
  reader of the batch: one round trip where there were two, and between that read and the
  next hand-off lie only that commit and building the message. The sent event, when the
  kind has one, is written in that transaction too.
- On PostgreSQL, with no sent event, the record and the next read are one statement run on
  its own atomic (no BEGIN, no COMMIT round trip); a read on its own runs likewise.
- Every write is conditional on the lease (`lease_owner`): a worker whose lease ran out
  changes nothing, and writes no event.
"""

from __future__ import annotations

from contextlib import closing
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, literal
from sqlalchemy.sql import Select

from drip.dispatch.lane import Landing
from drip.dispatch.producers import Item, Producer
from drip.dispatch.record import recorded_and_read
from drip.store.deferred import Deferred
from drip.store.direct import Direct
from drip.store.models import Event, EventKind

EVENTS = cast(Table, Event.__table__)
SENT_EVENT = insert(EVENTS).values(
    subscriber_id=bindparam("e_subscriber"),
    enrollment_id=bindparam("e_enrollment"),
    kind=bindparam("e_kind", type_=EVENTS.c.kind.type),
    at=bindparam("e_at", type_=EVENTS.c.at.type),
    detail=bindparam("e_detail"),
)


class HotPath:
    """One producer's status reads and sent records on one connection of its own."""

    def __init__(
        self,
        conn: Connection,
        producer: Producer,
        sent_event: EventKind | None,
        worker: str,
    ) -> None:
        self.conn, self.producer, self.worker = conn, producer, worker
        self.dialect = conn.dialect
        self.postgres = self.dialect.name == "postgresql"
        self.sent_event = sent_event
        self._sent = Direct(producer.sent(), self.dialect)
        self._event = Direct(SENT_EVENT, self.dialect) if sent_event is not None else None
        # Compiled once per statement object: a read on its own, and (PostgreSQL) a record
        # with a read; each keeps its statement, so an id is never reused for another.
        self._reads: dict[int, tuple[object, Direct]] = {}
        self._records: dict[int, tuple[object, Deferred]] = {}

    def read(self, item: Item) -> str:
        """The reader's status, read now, on its own (no transaction left open)."""
        statement, params = self.producer.status_read(item)
        driver = self._driver()
        with closing(driver.cursor()) as cursor:
            if self.postgres:
                driver.autocommit = True
                try:
                    row = self._direct(statement).run(cursor, params).fetchone()
                finally:
                    driver.autocommit = False
            else:
                row = self._direct(statement).run(cursor, params).fetchone()
                driver.rollback()
        return self.producer.verdict(item, _found(row))

    def record_sent(
        self, item: Item, attempts: int, at: datetime, following: Item | None
    ) -> tuple[bool, str | None]:
        """Mark the item's row sent (and write the sent event) in one commit, if the lease
        is still this worker's (False if not: nothing changed); in the same transaction,
        read the status of `following`'s reader (None when there is none)."""
        return self.record_later(item, attempts, at, following)()

    def record_later(
        self, item: Item, attempts: int, at: datetime, following: Item | None
    ) -> Landing[str]:
        """`record_sent`, whose outcome the returned call waits for: on PostgreSQL, with no
        sent event, one statement sent without waiting (drip.store.deferred)."""
        params: dict[str, Any] = {
            "p_row": item.row_id,
            "p_me": self.worker,
            "p_attempts": attempts,
            "p_at": at,
        }
        statement = None
        if following is not None:
            statement, following_params = self.producer.status_read(following)
            params.update(following_params)
        driver = self._driver()
        if self.postgres and self._event is None:
            pending = self._together(statement).send(driver, params)
            return lambda: self._verdicts(pending.result(), following)
        with closing(driver.cursor()) as cursor:
            recorded, row = self._transaction(driver, cursor, item, at, statement, params)
        return lambda: self._verdicts((recorded, *(row or (None,))), following)

    def _verdicts(self, row: Any, following: Item | None) -> tuple[bool, str | None]:
        """(recorded, the following reader's status) from (recorded, its status row)."""
        if following is None:
            return bool(row[0]), None
        return bool(row[0]), self.producer.verdict(following, _found(row[1:]))

    def _transaction(
        self,
        driver: Any,
        cursor: Any,
        item: Item,
        at: datetime,
        statement: Select[Any] | None,
        params: dict[str, Any],
    ) -> tuple[bool, Any]:
        try:
            recorded = self._sent.run(cursor, params).rowcount > 0
            if recorded and self._event is not None:
                self._event.run(cursor, self._event_params(item, at))
            row = None if statement is None else self._direct(statement).run(cursor, params)
            row = None if row is None else row.fetchone()
        except BaseException:
            driver.rollback()
            raise
        if recorded:
            driver.commit()
        else:
            driver.rollback()
        return recorded, row

    def _together(self, statement: Select[Any] | None) -> Deferred:
        key = -1 if statement is None else id(statement)
        if key not in self._records:
            marked = self.producer.sent().returning(literal(1).label("one")).cte("sent_row")
            together = recorded_and_read(marked, statement)
            self._records[key] = (statement, Deferred(together, self.dialect))
        return self._records[key][1]

    def _direct(self, statement: Select[Any]) -> Direct:
        key = id(statement)
        if key not in self._reads:
            self._reads[key] = (statement, Direct(statement, self.dialect))
        return self._reads[key][1]

    def _event_params(self, item: Item, at: datetime) -> dict[str, Any]:
        return {
            "e_subscriber": item.subscriber_id,
            "e_enrollment": item.enrollment_id,
            "e_kind": self.sent_event,
            "e_at": at,
            "e_detail": f"{item.label} ({item.message_id})"[:2000],
        }

    def _driver(self) -> Any:
        driver = self.conn.connection.dbapi_connection
        assert driver is not None and not self.conn.in_transaction()
        return driver


def _found(row: Any) -> Any:
    """The status row, or None when the read found none (its first column NULL)."""
    return None if row is None or row[0] is None else row
