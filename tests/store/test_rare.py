"""SQLite's statistics keep one average per indexed column: with every reader engaged,
"quiet" looks as common as "engaged", and its planner would read every row to find the
few. The questions for the few (quiet readers to ask, quiet readers gone, readers paused
long ago) say they are rare (drip.store.queries.rare) and go through their indexes
whatever ANALYZE found."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from drip.audience.engagement import sweep, to_ask
from drip.core.clock import FrozenClock
from drip.dispatch.still_wanted import paused_long
from drip.services import Services, build_services
from tests.bulk import add_due_readers
from tests.conftest import make_settings
from tests.query_plans import plans

READERS = 2_000


@pytest.fixture
def analyzed(tmp_path: Path, sqlite_url: str, clock: FrozenClock) -> Services:
    """Two thousand readers, every one engaged and active, and ANALYZE run over them."""
    svc = build_services(make_settings(tmp_path, sqlite_url), clock)
    add_due_readers(svc.engine, READERS, clock())
    with svc.engine.begin() as conn:
        conn.execute(text("UPDATE subscribers SET engagement = 'engaged'"))
        conn.execute(text("ANALYZE"))
    return svc


def reads_no_table_whole(steps: list[str], *tables: str) -> bool:
    return bool(steps) and not any(
        step.startswith(f"SCAN {table}") for step in steps for table in tables
    )


def in_session(svc: Services, work: Callable[[Any], object]) -> None:
    with svc.sessions() as session:
        work(session)
        session.rollback()


def test_quiet_readers_to_ask_are_found_through_the_engagement_index(analyzed: Services) -> None:
    library = analyzed.content.library()
    with plans(analyzed.engine) as steps:
        in_session(analyzed, lambda session: to_ask(session, library, 200))
    assert reads_no_table_whole(steps, "subscribers", "enrollments"), steps


def test_quiet_readers_gone_are_found_through_the_engagement_index(
    analyzed: Services, clock: FrozenClock
) -> None:
    library = analyzed.content.library()
    with plans(analyzed.engine) as steps:
        in_session(analyzed, lambda session: sweep(session, library, clock()))
    assert reads_no_table_whole(steps, "subscribers"), steps


def test_readers_paused_long_ago_are_found_through_their_index(
    analyzed: Services, clock: FrozenClock
) -> None:
    with plans(analyzed.engine) as steps:
        in_session(analyzed, lambda session: paused_long(session, clock() + timedelta(days=90)))
    assert all("ix_enrollments_status_id" not in step for step in steps), steps
    assert any("ix_enrollments_paused_since" in step for step in steps), steps
