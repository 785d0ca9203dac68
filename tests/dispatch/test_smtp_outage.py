"""The SMTP relay goes away in the middle of a pass and comes back: nothing lost, nothing twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.dispatch import Outcome
from drip.services import Services, build_services
from drip.store.models import Delivery, DeliveryStatus, Enrollment, EnrollmentStatus
from tests.conftest import make_settings
from tests.smtp import SmtpServer

READERS = 20
LESSONS = ["Welcome, Reader", "Lesson two", "Lesson three"]


def sign_up_readers(svc: Services) -> None:
    with svc.sessions() as session:
        for n in range(READERS):
            subscribe(
                session,
                svc.content.library(),
                "tiny",
                f"reader{n}@example.org",
                svc.clock(),
                consent=Consent("test", "yes"),
                first_name="Reader",
                confirmed=True,
            )
        session.commit()


def test_relay_outage_mid_pass_then_every_lesson_arrives_in_order_once(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, backend_url, smtp_url=smtp_server.url), clock)
    sign_up_readers(svc)
    dispatcher = svc.dispatcher()
    seen: list[Outcome] = []

    def stop_after_five(outcome: Outcome) -> None:
        seen.append(outcome)
        if len(seen) == 5:
            smtp_server.stop()  # the relay dies while the batch's connection is open

    report = dispatcher.run_pass(clock(), progress=stop_after_five)
    assert report.count("sent") == 5
    assert [o.status for o in report.outcomes[5:]] == ["retrying"]
    assert report.outcomes[5].relay_down
    assert str(report.outcomes[5]).split("(", 1)[1].startswith("relay: ")  # as printed
    assert len(smtp_server.messages) == 5

    clock.advance(minutes=5)  # still down: a pass refuses nothing and loses nothing
    down = dispatcher.run_pass(clock())
    assert down.count("sent") == 0 and down.count("retrying") == 1
    with svc.sessions() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(Enrollment)
                .where(Enrollment.status != EnrollmentStatus.ACTIVE)
            )
            == 0
        )

    smtp_server.start()
    for _ in range(8 * 24):  # eight days, a pass every hour
        clock.advance(hours=1)
        dispatcher.run_pass(clock())

    for n in range(READERS):
        received = smtp_server.to(f"reader{n}@example.org")
        assert [m.subject for m in received] == LESSONS, n
    ids = Counter(str(m.message["Message-ID"]) for m in smtp_server.messages)
    assert len(ids) == READERS * len(LESSONS)
    assert set(ids.values()) == {1}
    with svc.sessions() as session:
        statuses = Counter(session.scalars(select(Delivery.status)))
        assert statuses == {DeliveryStatus.SENT: READERS * len(LESSONS)}
        assert set(session.scalars(select(Enrollment.status))) == {EnrollmentStatus.COMPLETED}
    svc.engine.dispose()
