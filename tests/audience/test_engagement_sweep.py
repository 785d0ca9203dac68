"""The sweep brings every reader who acted since the last one up to date in a few statements,
however many they are: after a broadcast's clicks, or a worker down for a day, it took two
statements a reader and held each one in the pass's session (bench/PROFILE.md, "The sweep
after many readers acted")."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from drip.audience.controls import pause
from drip.audience.engagement import GONE_REASON, sweep
from drip.core.clock import FrozenClock
from drip.services import Services, build_services
from drip.store.models import (
    Engagement,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    Subscriber,
)
from tests.bulk import add_due_readers, add_sent_broadcast
from tests.conftest import make_settings
from tests.query_plans import statements


def _clicks(engine: Engine, ids: list[int], at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(Event),
            [
                {"subscriber_id": i, "kind": EventKind.CLICKED, "at": at, "detail": "a link"}
                for i in ids
            ],
        )


def _statements_of_a_sweep(svc: Services, readers: int, now: datetime) -> int:
    """How many statements a sweep at `now` runs after the first `readers` readers each
    clicked twice since the sweep before."""
    with Session(svc.engine) as session:
        ids = list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))[:readers]
    _clicks(svc.engine, ids, now - timedelta(minutes=2))
    _clicks(svc.engine, ids, now - timedelta(minutes=1))
    with statements(svc.engine) as seen, Session(svc.engine) as session:
        sweep(session, svc.content.library(), now)
    return len(seen)


def test_a_sweep_takes_as_many_statements_for_forty_readers_who_acted_as_for_two(
    tmp_path: Path, backend_url: str, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, backend_url), clock)
    add_due_readers(svc.engine, 40, clock())
    with Session(svc.engine) as session:
        sweep(session, svc.content.library(), clock())  # the cursor, from now
    few = _statements_of_a_sweep(svc, 2, clock() + timedelta(minutes=5))
    many = _statements_of_a_sweep(svc, 40, clock() + timedelta(minutes=10))
    svc.engine.dispose()
    assert few == many, (few, many)


def _copies(engine: Engine, ids: list[int], at: datetime, broadcasts: int) -> None:
    """`broadcasts` broadcasts, a copy of each sent to every reader of `ids` at `at`."""
    with engine.begin() as conn:
        for n in range(broadcasts):
            add_sent_broadcast(conn, at, ids, name=f"B{n}")


def test_as_many_statements_for_forty_readers_going_quiet_as_for_two(
    tmp_path: Path, backend_url: str, clock: FrozenClock
) -> None:
    """A broadcast can take thousands of readers past N emails without an action at once:
    each one's courses were read on their own to write the step on their timelines."""
    svc = build_services(make_settings(tmp_path, backend_url), clock)
    add_due_readers(svc.engine, 42, clock())
    library = svc.content.library()
    with Session(svc.engine) as session:
        session.execute(update(Subscriber).values(engagement=Engagement.ENGAGED))
        session.commit()
        sweep(session, library, clock())  # the cursor, from now
        ids = list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))
    counts = []
    for minutes, readers in ((5, ids[:2]), (10, ids[2:])):
        now = clock() + timedelta(minutes=minutes)
        with Session(svc.engine) as session:  # past the steps the round before wrote
            sweep(session, library, now - timedelta(minutes=2))
        _copies(svc.engine, readers, now - timedelta(minutes=1), library.engagement.quiet_after)
        with statements(svc.engine) as seen, Session(svc.engine) as session:
            assert sweep(session, library, now).quiet == len(readers)
        counts.append(len(seen))
    svc.engine.dispose()
    assert counts[0] == counts[1], counts


def test_a_sweep_engages_quiet_and_gone_readers_keeps_each_ones_latest_action_and_counts_them(
    tmp_path: Path, backend_url: str, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, backend_url), clock)
    now = clock()
    add_due_readers(svc.engine, 4, now)
    library = svc.content.library()
    later_than_clicks = now + timedelta(hours=1)  # a click already counted at once
    with Session(svc.engine) as session:
        quiet, engaged, idle, gone = session.scalars(
            select(Subscriber).order_by(Subscriber.id)
        ).all()
        quiet.engagement, quiet.repermission_at = Engagement.QUIET, now - timedelta(days=2)
        for reader in (engaged, idle):
            reader.engagement, reader.engaged_at = Engagement.ENGAGED, later_than_clicks
        gone.engagement = Engagement.GONE
        pause(session, gone.enrollments[0], now, GONE_REASON)
        session.commit()
        sweep(session, library, now)  # the cursor, from now
        ids = quiet.id, engaged.id, idle.id, gone.id
    _clicks(svc.engine, [ids[0], ids[1], ids[3]], now + timedelta(minutes=1))
    _clicks(svc.engine, [ids[0]], now + timedelta(minutes=2))
    with Session(svc.engine) as session:
        swept = sweep(session, library, now + timedelta(minutes=5))
        rows = {
            s.id: (s.engagement, s.engaged_at, s.repermission_at)
            for s in session.scalars(select(Subscriber))
        }
        back = session.scalars(select(Enrollment).where(Enrollment.subscriber_id == ids[3])).one()
    assert swept.engaged == 2  # the quiet one and the gone one; the engaged one was already
    assert rows[ids[0]] == (Engagement.ENGAGED, now + timedelta(minutes=2), None)
    assert rows[ids[1]] == (Engagement.ENGAGED, later_than_clicks, None)  # never moved back
    assert rows[ids[2]] == (Engagement.ENGAGED, later_than_clicks, None)  # did nothing
    assert rows[ids[3]] == (Engagement.ENGAGED, now + timedelta(minutes=1), None)
    assert back.status == EnrollmentStatus.ACTIVE  # the gone reader's course goes on
    svc.engine.dispose()


def _quiet(engine: Engine, ids: list[int], since: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(ids))
            .values(engagement=Engagement.QUIET, engaged_at=since)
        )


def test_an_action_committed_after_a_later_one_was_swept_still_counts(
    tmp_path: Path, postgres_url: str, clock: FrozenClock
) -> None:
    """On PostgreSQL a transaction takes its event's id when it inserts it, and may commit
    after a transaction that took a later id: the sweep that read up to the later id moved
    its cursor past the earlier one, which no sweep read (a reply, a pace choice: only a
    click marks its reader at once)."""
    svc = build_services(make_settings(tmp_path, postgres_url), clock)
    now = clock()
    add_due_readers(svc.engine, 2, now)
    library = svc.content.library()
    with Session(svc.engine) as session:
        first, second = session.scalars(select(Subscriber.id).order_by(Subscriber.id)).all()
        sweep(session, library, now)  # the cursor, from now
    _quiet(svc.engine, [first, second], now - timedelta(days=9))
    replied = {"kind": EventKind.REPLIED, "at": now + timedelta(minutes=1), "detail": "a reply"}
    slow = svc.engine.connect()
    slow.begin()
    slow.execute(insert(Event), [{**replied, "subscriber_id": first}])  # its id taken first
    with svc.engine.begin() as quick:
        quick.execute(insert(Event), [{**replied, "subscriber_id": second}])
    with Session(svc.engine) as session:
        assert sweep(session, library, now + timedelta(minutes=2)).engaged == 1
    slow.commit()  # after the sweep that moved past its id
    slow.close()
    with Session(svc.engine) as session:
        swept = sweep(session, library, now + timedelta(minutes=3))
        states = dict(session.execute(select(Subscriber.id, Subscriber.engagement)).all())
    assert swept.engaged == 1
    assert states == {first: Engagement.ENGAGED, second: Engagement.ENGAGED}
    svc.engine.dispose()


def test_an_action_read_again_does_not_bring_back_a_reader_who_went_quiet_since(
    tmp_path: Path, backend_url: str, clock: FrozenClock
) -> None:
    """What the sweep reads again behind its cursor (for late commits) counts only when it
    is later than the reader's last counted action: an old click does not undo a quiet
    reader's state, which N unanswered emails after it set."""
    svc = build_services(make_settings(tmp_path, backend_url), clock)
    now = clock()
    add_due_readers(svc.engine, 2, now)
    library = svc.content.library()
    with Session(svc.engine) as session:
        ids = list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))
        sweep(session, library, now)
    _clicks(svc.engine, ids, now + timedelta(minutes=1))
    with Session(svc.engine) as session:
        sweep(session, library, now + timedelta(minutes=2))
    _quiet(svc.engine, ids, now + timedelta(minutes=1))  # as if N emails went unanswered
    with Session(svc.engine) as session:
        swept = sweep(session, library, now + timedelta(days=1))
        states = set(session.scalars(select(Subscriber.engagement)))
    assert swept.engaged == 0
    assert states == {Engagement.QUIET}
    svc.engine.dispose()
