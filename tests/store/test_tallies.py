"""The tallies follow every kind of write to enrollments and deliveries, on both databases:
multi-row inserts (counted per statement on PostgreSQL), single-row changes of status,
lesson, sequence, confirmation and day, and deletes, also cascading from a reader."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, text, update
from sqlalchemy.orm import Session

from drip.store.db import MIGRATIONS, make_engine
from drip.store.models import Delivery, Enrollment, Subscriber
from tests.web.test_admin_scale import direct_counts, tallies

DAY = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)


def _readers(n: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "email": f"r{i}@example.org", "timezone": "UTC", "created_at": DAY}
        for i in range(1, n + 1)
    ]


def _enrollment(i: int, sequence: str, status: str, confirmed: bool) -> dict[str, Any]:
    return {
        "id": i,
        "subscriber_id": i,
        "sequence": sequence,
        "status": status,
        "created_at": DAY,
        "confirmed_at": DAY if confirmed else None,
    }


def _delivery(i: int, enrollment: int, lesson: str, status: str, at: datetime) -> dict[str, Any]:
    return {
        "id": i,
        "enrollment_id": enrollment,
        "lesson": lesson,
        "lesson_version": "v1",
        "status": status,
        "message_id": f"<{i}@test>",
        "created_at": at,
        "updated_at": at,
        "sent_at": at if status == "sent" else None,
    }


def _writes() -> list[Any]:
    """Statements in the order run: each changes the tallies differently."""
    later = DAY + timedelta(days=1)
    deliveries = [
        _delivery(1, 1, "welcome", "sent", DAY),
        _delivery(2, 2, "welcome", "sending", DAY),
        _delivery(3, 3, "welcome", "failed", DAY),
        _delivery(4, 4, "welcome", "sent", DAY - timedelta(days=1)),
        _delivery(5, 1, "two", "sending", DAY),
    ]
    D, E = Delivery, Enrollment
    return [
        insert(Subscriber).values(_readers(6)),
        insert(Enrollment).values(
            [
                _enrollment(1, "tiny", "active", True),
                _enrollment(2, "tiny", "active", True),
                _enrollment(3, "other", "pending", False),
                _enrollment(4, "tiny", "completed", True),
                _enrollment(5, "other", "active", True),
            ]
        ),
        insert(Enrollment).values(_enrollment(6, "tiny", "pending", False)),
        insert(Delivery).values(deliveries),
        insert(Delivery).values(_delivery(6, 5, "welcome", "sent", later)),
        update(D).where(D.id == 2).values(status="sent", sent_at=later, updated_at=later),
        update(D).where(D.id == 5).values(status="failed", updated_at=later),
        update(D).where(D.id == 5).values(updated_at=DAY),  # a failure moved to another day
        update(D).where(D.id == 1).values(sent_at=later),  # the same status, another day
        update(D).where(D.id == 4).values(lesson="two"),
        update(D).where(D.id == 3).values(status="sent", sent_at=DAY),  # retried, same day
        update(E).where(E.id == 3).values(confirmed_at=DAY, status="active"),
        update(E).where(E.id == 6).values(confirmed_at=DAY),  # confirmed, status unchanged
        update(E).where(E.id == 6).values(sequence="other"),
        update(E).where(E.id.in_([1, 5])).values(status="paused"),
        delete(D).where(D.id == 6),
        delete(E).where(E.id == 4),  # its deliveries first
        delete(Subscriber).where(Subscriber.id == 1),  # cascades to enrollment 1's rows
    ]


def test_tallies_agree_with_a_direct_count_after_each_kind_of_write(backend_url: str) -> None:
    engine = make_engine(backend_url)
    try:
        with Session(engine) as session:
            for statement in _writes():
                session.execute(statement)
                session.flush()
                assert tallies(session) == direct_counts(session), str(statement)
            session.commit()
            enrollments, deliveries, days = tallies(session)
            assert enrollments[("other", "active")] == (1, 1)
            assert deliveries[("tiny", "welcome", "sent")] == 1  # enrollment 2's
            assert days == {DAY.date(): (1, 0), (DAY + timedelta(days=1)).date(): (1, 0)}
    finally:
        engine.dispose()


def test_the_cheaper_triggers_come_off_and_back_on_with_the_same_counts(
    postgres_url: str,
) -> None:
    """0023's downgrade puts 0003's triggers back and its upgrade takes them off again, in
    one transaction rolled back at the end (PostgreSQL's DDL is transactional)."""
    path = MIGRATIONS / "versions" / "0023_cheaper_tallies.py"
    spec = importlib.util.spec_from_file_location("drip_migration_0023", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    old_functions = _load_0003().POSTGRES_UP
    engine = make_engine(postgres_url)
    try:
        with Session(engine) as session:
            writes = _writes()
            for statement in writes[:5]:
                session.execute(statement)
            for sql in migration.POSTGRES_DOWN + old_functions:
                session.execute(text(sql))
            for statement in writes[5:12]:  # under 0003's triggers
                session.execute(statement)
            assert tallies(session) == direct_counts(session)
            for sql in migration.POSTGRES_UP:
                session.execute(text(sql))
            for statement in writes[12:]:
                session.execute(statement)
            assert tallies(session) == direct_counts(session)
            session.rollback()
    finally:
        engine.dispose()


def _load_0003() -> Any:
    path = MIGRATIONS / "versions" / "0003_admin_rollups.py"
    spec = importlib.util.spec_from_file_location("drip_migration_0003", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
