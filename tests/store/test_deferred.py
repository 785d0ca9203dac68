"""A statement sent to PostgreSQL and answered later (drip.store.deferred): it runs on its
own and commits, it survives psycopg deallocating every prepared statement, and a failure
is psycopg's own error with the connection free afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, update

from drip.store.db import make_engine
from drip.store.deferred import Deferred
from drip.store.models import WorkerHeartbeat

pytestmark = pytest.mark.postgres

BEATS = cast(Table, WorkerHeartbeat.__table__)
COUNT = (
    update(BEATS)
    .where(BEATS.c.worker == bindparam("p_worker"))
    .values(
        last_pass_sent=BEATS.c.last_pass_sent + bindparam("p_more"),
        last_pass_at=bindparam("p_at", type_=BEATS.c.last_pass_at.type),
    )
    .returning(BEATS.c.last_pass_sent, BEATS.c.last_pass_at)
)
AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(
            insert(BEATS).values(
                worker="w1", started_at=AT, last_pass_at=AT, last_pass_sent=0, last_pass_failed=0
            )
        )
    yield engine
    engine.dispose()


def driver(conn: Connection) -> psycopg.Connection[Any]:
    return cast(psycopg.Connection[Any], conn.connection.dbapi_connection)


def sent(engine: Engine) -> int:
    with engine.connect() as other:
        return int(other.execute(select(BEATS.c.last_pass_sent)).scalar_one())


def test_a_deferred_statement_commits_on_its_own_and_answers_its_row(engine: Engine) -> None:
    count = Deferred(COUNT, engine.dialect)
    with engine.connect() as conn:
        pending = count.send(driver(conn), {"p_worker": "w1", "p_more": 3, "p_at": AT})
        assert pending.result() == (3, AT)
        assert driver(conn).pgconn.transaction_status == pq.TransactionStatus.IDLE
        assert sent(engine) == 3  # seen by another connection: committed
        second = count.send(driver(conn), {"p_worker": "nobody", "p_more": 1, "p_at": AT})
        assert second.result() is None
    assert sent(engine) == 3


def test_a_statement_psycopg_deallocated_is_prepared_again_and_runs_once(engine: Engine) -> None:
    count = Deferred(COUNT, engine.dialect)
    with engine.connect() as conn:
        psycopg_conn = driver(conn)
        assert count.send(psycopg_conn, {"p_worker": "w1", "p_more": 1, "p_at": AT}).result()
        # psycopg prepares a statement of its own, then a rollback has it DEALLOCATE ALL.
        psycopg_conn.execute("SELECT 1", prepare=True)
        psycopg_conn.rollback()
        names = psycopg_conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
        psycopg_conn.rollback()
        assert names == (0,)
        again = count.send(psycopg_conn, {"p_worker": "w1", "p_more": 1, "p_at": AT})
        assert again.result() == (2, AT)
    assert sent(engine) == 2


def test_a_failure_raises_psycopgs_error_and_frees_the_connection(engine: Engine) -> None:
    clash = Deferred(
        insert(BEATS).values(
            worker=bindparam("p_worker"),
            started_at=bindparam("p_at", type_=BEATS.c.started_at.type),
            last_pass_at=bindparam("p_at", type_=BEATS.c.last_pass_at.type),
            last_pass_sent=0,
            last_pass_failed=0,
        ),
        engine.dialect,
    )
    with engine.connect() as conn:
        pending = clash.send(driver(conn), {"p_worker": "w1", "p_at": AT})
        with pytest.raises(psycopg.errors.UniqueViolation):
            pending.result()
        assert conn.execute(select(BEATS.c.worker)).scalars().all() == ["w1"]
