"""What a batch's readers were handed this week (drip.dispatch.caps.handed_off, read beside
every claim) is found through the readers' own rows on SQLite, with or without statistics.

Without them (drip never runs ANALYZE), SQLite read every delivery and every broadcast copy
ever sent, through their status indexes, for each batch; with statistics, every delivery sent
in the last eight days, through its time. The cost grew with what had been sent, batch after
batch (bench/PROFILE.md, "The caps' question on SQLite, the sweep, and a database with a
past")."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text

from drip.core.clock import FrozenClock
from drip.dispatch.caps import handed_off
from drip.services import Services, build_services
from drip.store.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
)
from tests.bulk import add_due_readers, add_sent_broadcast
from tests.conftest import make_settings
from tests.query_plans import plans

READERS = 2_000
BATCH = range(1, 201)  # a batch's readers; the plan is what matters, not who they are


def sent_to_each(svc: Services, clock: FrozenClock) -> None:
    """A lesson and a broadcast's copy sent yesterday to every reader."""
    now = clock()
    with svc.engine.begin() as conn:
        enrollments = conn.scalars(select(Enrollment.id)).all()
        conn.execute(
            insert(Delivery),
            [
                {
                    "enrollment_id": enrollment,
                    "lesson": "welcome",
                    "lesson_version": "v1",
                    "message_id": f"<{enrollment}.welcome@test>",
                    "status": DeliveryStatus.SENT,
                    "attempts": 1,
                    "created_at": now - timedelta(days=1),
                    "updated_at": now - timedelta(days=1),
                    "sent_at": now - timedelta(days=1),
                }
                for enrollment in enrollments
            ],
        )
        add_sent_broadcast(conn, now - timedelta(days=1))


@pytest.fixture
def svc(tmp_path: Path, sqlite_url: str, clock: FrozenClock) -> Services:
    return build_services(make_settings(tmp_path, sqlite_url), clock)


def caps_plan(svc: Services, clock: FrozenClock) -> list[str]:
    with plans(svc.engine) as steps, svc.engine.connect() as conn:
        handed_off(conn, BATCH, clock() - timedelta(days=8))
    return steps


def through_the_readers(steps: list[str]) -> bool:
    """Deliveries looked up by the readers' enrollments, copies by the readers."""
    deliveries = [step for step in steps if " deliveries " in f"{step} "]
    copies = [step for step in steps if "broadcast_recipients" in step]
    return (
        bool(deliveries and copies)
        and all("(enrollment_id=?)" in step for step in deliveries)
        and all("(subscriber_id=?" in step for step in copies)
    )


def test_without_statistics_it_goes_through_the_readers(svc: Services, clock: FrozenClock) -> None:
    add_due_readers(svc.engine, READERS, clock())
    sent_to_each(svc, clock)
    steps = caps_plan(svc, clock)
    assert through_the_readers(steps), steps


def test_with_statistics_it_still_goes_through_the_readers(
    svc: Services, clock: FrozenClock
) -> None:
    add_due_readers(svc.engine, READERS, clock())
    sent_to_each(svc, clock)
    with svc.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    steps = caps_plan(svc, clock)
    assert through_the_readers(steps), steps
