"""An unsubscribe takes effect at once, even in the middle of a pass: a lesson not yet handed
to SMTP is not sent. The pass reads each reader's status after the previous hand-off (in
the transaction that records it), and again after a progress callback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from drip.audience.leaving import unsubscribe
from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.dispatch import Outcome
from drip.mail.transports import SmtpTransport, Transport
from drip.services import Services, build_services
from drip.store.models import Delivery, DeliveryStatus, Enrollment, EnrollmentStatus
from tests.conftest import make_settings
from tests.smtp import AfterHandOff, SmtpServer

READERS = ["one@example.org", "two@example.org", "three@example.org"]


def setup(
    tmp_path: Path,
    url: str,
    server: SmtpServer,
    clock: FrozenClock,
    transport: Callable[[], Transport] | None = None,
) -> tuple[Services, list[int]]:
    svc = build_services(make_settings(tmp_path, url, smtp_url=server.url), clock, transport)
    with svc.sessions() as session:
        ids = [
            subscribe(
                session,
                svc.content.library(),
                "tiny",
                address,
                clock(),
                consent=Consent("test", "yes"),
                confirmed=True,
            ).id
            for address in READERS
        ]
        session.commit()
    return svc, ids


def leave(svc: Services, enrollment_id: int, clock: FrozenClock) -> None:
    with svc.sessions() as session:
        unsubscribe(session, enrollment_id, clock())
        session.commit()


def assert_second_reader_skipped(svc: Services, server: SmtpServer, second: int) -> None:
    assert [m.recipients for m in server.messages] == [[READERS[0]], [READERS[2]]]
    with svc.sessions() as session:
        enrollment = session.get(Enrollment, second)
        assert enrollment is not None and enrollment.status == EnrollmentStatus.UNSUBSCRIBED
        assert (
            session.scalars(select(Delivery.status).where(Delivery.enrollment_id == second)).one()
            == DeliveryStatus.CANCELLED
        )


def test_unsubscribe_during_the_previous_hand_off_stops_the_next_lesson(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    ids: list[int] = []
    holder: list[Services] = []

    def unsubscribe_second(recipient: str) -> None:
        if recipient == READERS[0]:
            leave(holder[0], ids[1], clock)

    svc, created = setup(
        tmp_path,
        backend_url,
        smtp_server,
        clock,
        lambda: AfterHandOff(SmtpTransport(smtp_server.url), unsubscribe_second),
    )
    ids.extend(created)
    holder.append(svc)
    report = svc.dispatcher().run_pass(clock())
    assert [o.status for o in report.outcomes] == ["sent", "skipped", "sent"]
    assert_second_reader_skipped(svc, smtp_server, ids[1])
    svc.engine.dispose()


def test_unsubscribe_from_the_progress_callback_stops_the_next_lesson(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc, ids = setup(tmp_path, backend_url, smtp_server, clock)

    def progress(outcome: Outcome) -> None:
        if outcome.enrollment_id == ids[0]:
            leave(svc, ids[1], clock)

    report = svc.dispatcher().run_pass(clock(), progress=progress)
    assert [o.status for o in report.outcomes] == ["sent", "skipped", "sent"]
    assert_second_reader_skipped(svc, smtp_server, ids[1])
    svc.engine.dispose()
