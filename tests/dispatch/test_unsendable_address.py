"""One reader's address that SMTP cannot carry (non-ASCII, which needs SMTPUTF8) must not stop
the pass for everyone: that reader is set aside with the reason, the others get their mail."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.services import build_services
from drip.store.models import Delivery, Enrollment, EnrollmentStatus, Subscriber
from tests.conftest import make_settings
from tests.smtp import SmtpServer


def test_non_ascii_address_is_set_aside_and_the_pass_goes_on(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, backend_url, smtp_url=smtp_server.url), clock)
    with svc.sessions() as session:
        for address, confirmed in (
            ("zoë@example.org", True),
            ("ada@example.org", True),
            ("jürgen@example.org", False),
        ):
            subscribe(
                session,
                svc.content.library(),
                "tiny",
                address,
                clock(),
                consent=Consent("test", "yes"),
                confirmed=confirmed,
            )
        session.commit()

    report = svc.dispatcher().run_pass(clock())

    assert [m.recipients for m in smtp_server.messages] == [["ada@example.org"]]
    assert report.count("sent") == 1 and report.count("failed") == 2
    with svc.sessions() as session:
        rows = {
            email: enrollment
            for enrollment, email in session.execute(
                select(Enrollment, Subscriber.email).join(Subscriber)
            )
        }
        assert rows["zoë@example.org"].status == EnrollmentStatus.PAUSED
        assert "SMTPUTF8" in (rows["zoë@example.org"].paused_reason or "")
        assert rows["jürgen@example.org"].status == EnrollmentStatus.PENDING  # never confirmed
        assert "SMTPUTF8" in (rows["jürgen@example.org"].last_error or "")
        assert all(e.due_at is None for email, e in rows.items() if email != "ada@example.org")
        assert len(session.scalars(select(Delivery)).all()) == 1
    clock.advance(hours=1)
    assert svc.dispatcher().run_pass(clock()).count("failed") == 0  # not tried again
    svc.engine.dispose()
