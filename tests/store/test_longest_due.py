"""The claim's choice of readers (`queries.longest_due`): the longest-waiting first, active
and pending alike, none of a paused sequence; and on PostgreSQL a batch read as a batch,
however many readers are due behind it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, text, update

from drip.store import queries
from drip.store.db import make_engine
from drip.store.models import Enrollment, EnrollmentStatus, SequenceState
from tests.bulk import add_due_readers

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
ENROLLMENTS = cast(Table, Enrollment.__table__)
STATES = cast(Table, SequenceState.__table__)


def test_the_longest_due_come_first_active_and_pending_alike(backend_url: str) -> None:
    engine = make_engine(backend_url)
    add_due_readers(engine, 8, NOW)
    waited = {  # enrollment id: (status, minutes it has been due; negative: not due yet)
        1: (EnrollmentStatus.ACTIVE, 5),
        2: (EnrollmentStatus.PENDING, 50),
        3: (EnrollmentStatus.ACTIVE, 30),
        4: (EnrollmentStatus.PENDING, 20),
        5: (EnrollmentStatus.ACTIVE, -10),
        6: (EnrollmentStatus.COMPLETED, 90),
        7: (EnrollmentStatus.ACTIVE, 40),
        8: (EnrollmentStatus.ACTIVE, 99),
    }
    with engine.begin() as conn:
        for enrollment_id, (status, minutes) in waited.items():
            conn.execute(
                update(ENROLLMENTS)
                .where(ENROLLMENTS.c.id == enrollment_id)
                .values(status=status, due_at=NOW - timedelta(minutes=minutes))
            )
        conn.execute(update(ENROLLMENTS).where(ENROLLMENTS.c.id == 8).values(sequence="paused"))
        conn.execute(insert(STATES).values(sequence="paused", paused=True, updated_at=NOW))

    with engine.connect() as conn:
        four = [row[0] for row in conn.execute(queries.longest_due(conn, NOW, 4))]
        every = [row[0] for row in conn.execute(queries.longest_due(conn, NOW, 100))]

    assert four == [2, 7, 3, 4]
    assert every == [2, 7, 3, 4, 1]  # not 5 (due later), 6 (finished) or 8 (paused)
    engine.dispose()


@pytest.fixture
def backlog(postgres_url: str) -> Iterator[Any]:
    """3,000 readers due, half of them pending, each a minute longer than the one before;
    statistics gathered."""
    engine = make_engine(postgres_url)
    add_due_readers(engine, 3000, NOW)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE enrollments SET due_at = :now - id * interval '1 minute', "
                "status = CASE WHEN id % 2 = 0 THEN 'pending' ELSE 'active' END"
            ),
            {"now": NOW},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE enrollments"))
    yield engine
    engine.dispose()


def scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a JSON plan that reads the enrollments table."""
    if plan.get("Relation Name") == "enrollments":
        yield plan
    for child in plan.get("Plans", []):
        yield from scans(child)


@pytest.mark.postgres
def test_a_claim_reads_a_batch_not_every_reader_due_behind_it(backlog: Any) -> None:
    with backlog.connect() as conn:
        claim = queries.longest_due(conn, NOW, 50, skip_locked=True)
        sql = claim.compile(backlog, compile_kwargs={"literal_binds": True})
        explained = conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).scalar_one()
        taken = [row[0] for row in conn.execute(claim)]
        conn.rollback()

    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    read = [node["Actual Rows"] for node in scans(plan)]
    assert read and max(read) <= 50  # a batch of each status, where all 3,000 were read
    assert taken == list(range(3000, 2950, -1))  # the longest due, in order
