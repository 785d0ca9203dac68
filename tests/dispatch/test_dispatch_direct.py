"""The driver-cursor fast path (drip.store.direct) does what SQLAlchemy does with the same
statement: each statement a pass runs through it is run both ways, on two readers in the
same state, and the rows must come out the same."""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import ClauseElement, select
from sqlalchemy.engine import Connection

from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.dispatch.record import ADVANCE, MARK_SENT, RECORD_SENT_AND_CHECK, STILL_WANTED
from drip.services import Services, build_services
from drip.store.direct import Direct
from drip.store.models import Delivery, DeliveryStatus, Enrollment, EnrollmentStatus, Subscriber
from tests.conftest import make_settings

CONSENT = Consent(source="test", text="Yes, send me the course.")


@pytest.fixture
def svc(tmp_path: Any, backend_url: str, clock: FrozenClock) -> Services:
    return build_services(make_settings(tmp_path, backend_url), clock)


def readers_mid_send(svc: Services) -> list[tuple[int, int]]:
    """Three readers in the same state: leased, their welcome written ahead as `sending`.
    Returns (enrollment id, delivery id) of each."""
    now = svc.clock()
    pairs = []
    with svc.sessions() as session:
        for email in ("a@example.org", "b@example.org", "c@example.org"):
            enrollment = subscribe(
                session, svc.content.library(), "tiny", email, now, consent=CONSENT, confirmed=True
            )
            enrollment.lease_owner = "worker-1"
            delivery = Delivery(
                enrollment=enrollment,
                lesson="welcome",
                lesson_version="v1",
                status=DeliveryStatus.SENDING,
                attempts=0,
                message_id=f"<{email}>",
                created_at=now,
                updated_at=now,
            )
            session.add(delivery)
            session.flush()
            pairs.append((enrollment.id, delivery.id))
        session.commit()
    return pairs


def params(
    svc: Services, enrollment_id: int, delivery_id: int, check: int, me: str = "worker-1"
) -> dict[str, Any]:
    now = svc.clock()
    return {
        "p_delivery": delivery_id,
        "p_me": me,
        "p_at": now,
        "p_version": "v2",
        "p_enrollment": enrollment_id,
        "p_after": "second",
        "p_after_due": now + timedelta(days=2),
        "p_status": EnrollmentStatus.ACTIVE,
        "p_done_at": None,
        "p_check": check,
    }


def state(svc: Services, enrollment_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reader's enrollment and delivery rows, without what tells the two readers apart."""
    with svc.engine.connect() as conn:
        enrollment = (
            conn.execute(select(Enrollment.__table__).where(Enrollment.id == enrollment_id))
            .mappings()
            .one()
        )
        delivery = (
            conn.execute(select(Delivery.__table__).where(Delivery.enrollment_id == enrollment_id))
            .mappings()
            .one()
        )
    return (
        {k: v for k, v in enrollment.items() if k not in ("id", "subscriber_id")},
        {k: v for k, v in delivery.items() if k not in ("id", "enrollment_id", "message_id")},
    )


def direct(
    conn: Connection, statement: ClauseElement, values: dict[str, Any], autocommit: bool = False
) -> Any:
    """Run `statement` as the dispatcher does: compiled once, on the driver's cursor."""
    driver = conn.connection.dbapi_connection
    assert driver is not None
    with closing(driver.cursor()) as cursor:
        if autocommit:  # the one-statement record on PostgreSQL
            driver.autocommit = True
        try:
            result = Direct(statement, conn.dialect).run(cursor, values)
            row = result.fetchone() if result.description else None
        finally:
            if autocommit:
                driver.autocommit = False
        if not autocommit:
            driver.commit()
    return row


def test_recording_a_send_through_the_driver_cursor_changes_the_rows_as_sqlalchemy_does(
    svc: Services,
) -> None:
    (a, a_delivery), (b, b_delivery), (c, _) = readers_mid_send(svc)
    before = state(svc, a)
    with svc.engine.connect() as conn:
        for statement in (MARK_SENT, ADVANCE):
            direct(conn, statement, params(svc, a, a_delivery, c))
            conn.execute(statement, params(svc, b, b_delivery, c))
            conn.commit()

    assert state(svc, a) == state(svc, b)
    enrollment, delivery = state(svc, a)
    assert state(svc, a) != before
    assert delivery["status"] == DeliveryStatus.SENT and delivery["sent_at"] == svc.clock()
    assert enrollment["next_lesson"] == "second" and enrollment["lease_owner"] is None
    assert enrollment["due_at"] == svc.clock() + timedelta(days=2)


def test_a_time_written_through_the_driver_cursor_compares_in_sql_as_sqlalchemy_writes_it(
    svc: Services,
) -> None:
    """SQLite keeps times as text: a time on the second written without its `.000000`
    would sort before the same time written by SQLAlchemy, and never equal it."""
    (a, a_delivery), (b, b_delivery), (c, _) = readers_mid_send(svc)
    assert svc.clock().microsecond == 0
    with svc.engine.connect() as conn:
        direct(conn, MARK_SENT, params(svc, a, a_delivery, c))
        conn.execute(MARK_SENT, params(svc, b, b_delivery, c))
        conn.commit()
        at_now = select(Delivery.id).where(Delivery.sent_at == svc.clock()).order_by(Delivery.id)
        before_now = select(Delivery.id).where(Delivery.sent_at < svc.clock())
        assert list(conn.scalars(at_now)) == [a_delivery, b_delivery]
        assert list(conn.scalars(before_now)) == []


@pytest.mark.parametrize("suppressed", [False, True])
def test_the_check_before_a_hand_off_reads_through_the_driver_cursor_what_sqlalchemy_reads(
    svc: Services, suppressed: bool
) -> None:
    (a, _), _, _ = readers_mid_send(svc)
    if suppressed:
        with svc.sessions() as session:
            session.scalars(
                select(Subscriber).where(Subscriber.email == "a@example.org")
            ).one().suppressed_at = svc.clock()
            session.commit()
    with svc.engine.connect() as conn:
        fast = direct(conn, STILL_WANTED, {"p_check": a})
        usual = conn.execute(STILL_WANTED, {"p_check": a}).one()
        conn.rollback()

    assert fast[0] == usual.status == EnrollmentStatus.ACTIVE
    assert (fast[1] is None) == (usual.suppressed_at is None) == (not suppressed)
    assert fast[2] == usual.lease_owner == "worker-1"


@pytest.mark.postgres
def test_the_one_statement_record_on_postgresql_matches_sqlalchemy(
    tmp_path: Any, postgres_url: str, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, postgres_url), clock)
    (a, a_delivery), (b, b_delivery), (c, _) = readers_mid_send(svc)
    with svc.engine.connect() as conn:
        fast = direct(conn, RECORD_SENT_AND_CHECK, params(svc, a, a_delivery, c), autocommit=True)
        usual = conn.execute(RECORD_SENT_AND_CHECK, params(svc, b, b_delivery, c)).one()
        conn.commit()

    assert state(svc, a) == state(svc, b)
    assert state(svc, a)[1]["status"] == DeliveryStatus.SENT
    assert tuple(fast) == tuple(usual)
    assert fast == (1, EnrollmentStatus.ACTIVE, None, "worker-1")
    svc.engine.dispose()


def test_recording_a_send_changes_nothing_for_a_worker_that_lost_the_lease(
    svc: Services,
) -> None:
    (a, a_delivery), (b, b_delivery), (c, _) = readers_mid_send(svc)
    before = state(svc, a), state(svc, b)
    with svc.engine.connect() as conn:
        for statement in (MARK_SENT, ADVANCE):
            direct(conn, statement, params(svc, a, a_delivery, c, me="worker-2"))
            conn.execute(statement, params(svc, b, b_delivery, c, me="worker-2"))
            conn.commit()
        if conn.dialect.name == "postgresql":
            fast = direct(
                conn,
                RECORD_SENT_AND_CHECK,
                params(svc, a, a_delivery, 0, me="worker-2"),
                autocommit=True,
            )
            assert fast == (0, None, None, None)  # nothing marked sent; no next reader

    assert (state(svc, a), state(svc, b)) == before
