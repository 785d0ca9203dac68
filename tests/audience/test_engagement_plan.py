"""Each dispatch pass sweeps engagement by reading only what changed since the last sweep:
the timeline's new events by their ids, the lessons and broadcast copies sent since by their
time. It read, on every pass, the whole timeline in reader order (SQLite without
statistics, to skip a sort: drip never runs ANALYZE) and every broadcast copy ever sent
(both databases: no index began with the copy's `sent_at`). bench/PROFILE.md, "The caps'
question on SQLite, the sweep, and a database with a past"."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from drip.audience.engagement import sweep
from drip.core.clock import FrozenClock
from drip.services import build_services
from tests.bulk import add_due_readers
from tests.conftest import make_settings
from tests.query_plans import plans


def test_a_sweep_reads_the_new_events_and_recent_sends_and_no_table_whole(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, sqlite_url), clock)
    add_due_readers(svc.engine, 20, clock())
    library = svc.content.library()
    with Session(svc.engine) as session:
        sweep(session, library, clock())  # the first sweep starts the cursor
    with plans(svc.engine) as steps, Session(svc.engine) as session:
        sweep(session, library, clock() + timedelta(minutes=5))
    assert any("events" in step for step in steps), steps
    assert any("broadcast_recipients" in step for step in steps), steps
    whole = [
        step
        for step in steps
        if step.startswith(("SCAN events", "SCAN broadcast_recipients", "SCAN deliveries"))
    ]
    assert whole == [], steps
