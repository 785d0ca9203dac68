"""Scheduling a broadcast writes one recipient row per eligible reader, each due at the first
opening of their course's window in their own time zone, with one INSERT ... SELECT."""
# ruff: noqa: F811  (the svc fixture imported from test_broadcasts is a parameter here)

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select, text, update

from drip.content.schedule import into_window, reader_zone
from drip.core.clock import FrozenClock
from drip.dispatch import broadcast_schedule
from drip.dispatch.broadcasts import (
    audience_count,
    create_draft,
    read_broadcast,
    schedule,
    schedule_draft,
)
from drip.services import Services
from drip.store.models import BroadcastRecipient, Enrollment, RecipientStatus, Subscriber
from tests.conftest import enroll
from tests.dispatch.test_broadcasts import courses, news, svc  # noqa: F401  (fixtures)

READERS = [  # (address, course, time zone as stored)
    ("ada@example.org", "tiny", "America/New_York"),
    ("ada@example.org", "other", "America/New_York"),  # in both: one row, her first course
    ("bo@example.org", "other", "Asia/Kolkata"),
    ("cy@example.org", "tiny", "Asia/Kolkata"),
    ("di@example.org", "other", "Europe/London"),
    ("ed@example.org", "tiny", "Europe/London"),
    ("fi@example.org", "tiny", "Nowhere/Atlantis"),  # unknown: the course's zone
]


def test_each_recipient_is_due_in_their_own_window_and_written_by_one_insert(
    svc: Services, clock: FrozenClock, tmp_path: Path
) -> None:
    for address, course, _zone in READERS:
        enroll(svc, address, course, timezone="UTC")
    enroll(svc, "pending@example.org", "tiny", confirmed=False)
    with svc.engine.begin() as conn:
        for address, _course, zone in READERS:
            conn.execute(
                update(Subscriber).where(Subscriber.email == address).values(timezone=zone)
            )
    library = svc.content.library()
    spec = read_broadcast(news(tmp_path), library)
    at = clock() + timedelta(hours=5)
    inserts: list[str] = []

    def count_inserts(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "INSERT INTO BROADCAST_RECIPIENTS" in statement.upper():  # PostgreSQL: in a WITH
            inserts.append(statement)

    event.listen(svc.engine, "before_cursor_execute", count_inserts)
    with svc.sessions() as session:
        expected = audience_count(session, spec, clock())[0]
        broadcast = schedule(session, library, spec, at, clock())
    event.remove(svc.engine, "before_cursor_execute", count_inserts)

    assert len(inserts) == 1 and "SELECT" in inserts[0].upper()
    with svc.sessions() as session:
        rows = session.execute(
            select(BroadcastRecipient, Subscriber.timezone, Enrollment.sequence)
            .join(Subscriber, Subscriber.id == BroadcastRecipient.subscriber_id)
            .join(Enrollment, Enrollment.id == BroadcastRecipient.enrollment_id)
            .where(BroadcastRecipient.broadcast_id == broadcast.id)
        ).all()
    assert expected == len(rows) == 6
    ada_other = ("ada@example.org", "other", "America/New_York")
    assert {(r.sequence, r.timezone) for r in rows} == {
        (course, zone) for reader in READERS if reader != ada_other for _, course, zone in [reader]
    }
    for recipient, zone, slug in rows:
        sequence = library.sequences[slug]
        assert recipient.status == RecipientStatus.QUEUED and recipient.attempts == 0
        assert recipient.due_at == into_window(
            at, sequence.window, reader_zone(zone, sequence.timezone)
        )
    assert len({r.due_at for r, _z, _s in rows}) > 2  # the zones really differ


def test_an_audience_of_nobody_writes_no_rows(
    svc: Services, clock: FrozenClock, tmp_path: Path
) -> None:
    enroll(svc, "pending@example.org", "tiny", confirmed=False)
    library = svc.content.library()
    with svc.sessions() as session:
        broadcast = schedule(
            session, library, read_broadcast(news(tmp_path), library), clock(), clock()
        )
        assert (
            session.scalars(
                select(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == broadcast.id)
            ).all()
            == []
        )


def test_scheduling_tells_how_many_it_wrote_and_postgresql_knows_of_a_big_broadcast(
    svc: Services, clock: FrozenClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count is the admin's "Scheduled ...: N readers" (psycopg gave -1 for it). On
    PostgreSQL the planner is told of a big broadcast's copies before its first claim, so
    the claims read each batch in index order from the start, not every copy
    (drip.store.queries.first_due): 10,000 copies in production, 6 here."""
    monkeypatch.setattr(broadcast_schedule, "ANALYZE_AFTER", 6)
    for address, course, _zone in READERS:
        enroll(svc, address, course, timezone="UTC")
    library = svc.content.library()

    with svc.sessions() as session:
        draft = create_draft(session, read_broadcast(news(tmp_path), library), clock(), "")
        written = schedule_draft(session, library, draft, clock(), clock())

    assert written == 6  # ada's two courses give one copy
    if svc.engine.dialect.name == "postgresql":
        with svc.engine.connect() as conn:
            known = conn.scalar(
                text("SELECT reltuples FROM pg_class WHERE relname = 'broadcast_recipients'")
            )
        assert known == 6
