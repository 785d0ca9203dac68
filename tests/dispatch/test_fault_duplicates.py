"""Duplicates within the written bound under faults of the relay and of the lease.

A worker whose lease ran out while its relay hung changes nothing once another worker has
taken its readers over; a connection dropped after DATA (SMTP's own ambiguity) is sent again
under the same Message-ID, marked "outcome unknown, re-sent", and counted on the dashboard.
Each test counts at the SMTP server and in the database.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy import select

from drip.app import create_app
from drip.core.clock import FrozenClock
from drip.dispatch import OutcomeStatus, PassReport
from drip.dispatch.record import LEASE_LOST
from drip.mail.transports import SendError, SmtpTransport
from drip.ops.stats import overview
from drip.services import Services, build_services
from drip.store.models import OUTCOME_UNKNOWN, Delivery, DeliveryStatus, Enrollment
from tests.conftest import (
    CHEAP_HASHER,
    advance_through_due_times,
    enroll,
    make_settings,
    next_due,
)
from tests.smtp import SmtpServer
from tests.web.test_admin_access import logged_in_client

READERS = ["one@example.org", "two@example.org", "three@example.org"]
LATER = timedelta(minutes=10)  # past the 5-minute lease
HANG_UP = 1.0  # seconds the first worker's SMTP client waits for an answer


class FailsLate:
    """The real SMTP transport; when a hand-off fails, `meanwhile()` runs (once) before the
    worker sees the failure: what happens while a worker is stuck in a slow hand-off."""

    def __init__(self, inner: SmtpTransport, meanwhile: Callable[[], None]) -> None:
        self.inner = inner
        self.meanwhile: Callable[[], None] | None = meanwhile

    def __enter__(self) -> Self:
        self.inner.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.inner.__exit__(kind, error, tb)

    def send(self, sender: str, recipient: str, message: bytes, name: str) -> None:
        try:
            self.inner.send(sender, recipient, message, name)
        except SendError:
            if self.meanwhile is not None:
                meanwhile, self.meanwhile = self.meanwhile, None
                meanwhile()
            raise


def lessons_received(server: SmtpServer) -> Counter[tuple[str, str]]:
    return Counter((r, m.subject) for m in server.messages for r in m.recipients)


def test_a_worker_whose_lease_ran_out_in_a_hung_hand_off_leaves_the_new_holder_s_rows_alone(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    settings = make_settings(tmp_path, backend_url, smtp_url=smtp_server.url)
    # The relay hangs on every DATA until the second worker takes over: the first worker's
    # (by then, its client may have given up on an earlier answer on a loaded machine).
    handing_over = threading.Event()
    smtp_server.handler.stall_data = lambda number: not handing_over.is_set()
    taken_over: list[PassReport] = []
    second = build_services(settings, clock)

    def second_worker_takes_over() -> None:
        handing_over.set()
        taken_over.append(second.dispatcher("second").run_pass(clock() + LATER))

    first = build_services(
        settings,
        clock,
        lambda: FailsLate(
            SmtpTransport(smtp_server.url, timeout=HANG_UP), second_worker_takes_over
        ),
    )
    for address in READERS:
        enroll(first, address)

    report = first.dispatcher("first").run_pass(clock())
    smtp_server.handler.unstall.set()

    # The first worker timed out on reader one's DATA; the second one had taken all three
    # over by then, and sent them. The first one's failure and release changed nothing.
    assert [(o.email, o.status, o.detail) for o in report.outcomes] == [
        (READERS[0], OutcomeStatus.SKIPPED, LEASE_LOST)
    ]
    assert taken_over[0].count(OutcomeStatus.SENT) == 3
    assert lessons_received(smtp_server) == {(r, "Welcome, friend"): 1 for r in READERS}
    with second.sessions() as session:
        deliveries = session.scalars(select(Delivery)).all()
        enrollments = session.scalars(select(Enrollment)).all()
    assert [(d.status, d.attempts) for d in deliveries] == [(DeliveryStatus.SENT, 1)] * 3
    assert {(e.next_lesson, e.attempts, e.last_error, e.lease_owner) for e in enrollments} == {
        ("second", 0, None, None)
    }
    (due,) = {e.due_at for e in enrollments}  # lesson two's time, as the second worker set it
    assert due is not None and due > clock() + timedelta(days=2)

    # Through the rest of the course: every lesson once, to every reader.
    clock.set(clock() + LATER)
    advance_through_due_times(second, clock)
    assert set(lessons_received(smtp_server).values()) == {1}
    assert len(lessons_received(smtp_server)) == 3 * len(READERS)
    first.engine.dispose()
    second.engine.dispose()


def test_a_connection_dropped_after_data_is_re_sent_under_its_message_id_and_counted(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    settings = make_settings(tmp_path, backend_url, smtp_url=smtp_server.url)
    smtp_server.handler.drop_after_data = lambda number: number == 1
    svc: Services = build_services(settings, clock)
    for address in READERS:
        enroll(svc, address)

    first = svc.dispatcher().run_pass(clock())
    assert [o.status for o in first.outcomes] == [OutcomeStatus.RETRYING]
    assert "may have accepted" in first.outcomes[0].detail
    with svc.sessions() as session:
        dropped, *released = session.scalars(select(Delivery).order_by(Delivery.id)).all()
        assert dropped.status == DeliveryStatus.RETRYING
        assert (dropped.last_error or "").startswith(OUTCOME_UNKNOWN)
        assert [d.status for d in released] == [DeliveryStatus.RETRYING] * 2  # not tried

    retry_at = next_due(svc)
    assert retry_at is not None
    clock.set(retry_at)
    again = svc.dispatcher().run_pass(clock())
    assert again.count(OutcomeStatus.SENT) == len(READERS)

    # The relay had taken the message before it hung up: reader one has it twice, both
    # under one Message-ID; nobody else has anything twice.
    welcome = [m for m in smtp_server.to(READERS[0]) if m.subject == "Welcome, friend"]
    assert len(welcome) == 2
    assert len({str(m.message["Message-ID"]) for m in welcome}) == 1
    assert len(smtp_server.messages) == len(READERS) + 1
    with svc.sessions() as session:
        rows = session.execute(
            select(Delivery.enrollment_id, Delivery.status, Delivery.last_error).order_by(
                Delivery.enrollment_id
            )
        ).all()
        numbers = overview(session, clock(), settings.dispatch_interval)
    assert [status for _, status, _ in rows] == [DeliveryStatus.SENT] * 3
    assert (rows[0].last_error or "").startswith(f"{OUTCOME_UNKNOWN}: connection to 127.0.0.1")
    assert [row.last_error for row in rows[1:]] == [None, None]
    assert numbers.unknown_day == 1

    app = create_app(settings, clock=clock, password_hasher=CHEAP_HASHER)
    page = logged_in_client(app).get("/admin/").text
    shown = re.search(r'id="unknown-day">(\d+)<', page)
    assert shown is not None and shown[1] == "1"
    app.extensions["drip"].engine.dispose()
    svc.engine.dispose()
