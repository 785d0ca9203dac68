"""The machine under a pass: a dispatch connection that dies, an outbox disk that fails, a
hand-off that comes later than the pass began, a worker clock apart from the database's."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from drip.clock import FrozenClock
from drip.db import make_engine
from drip.dispatch import Outcome
from drip.services import Services, build_services
from drip.subscriptions import Consent, subscribe
from tests.conftest import make_settings
from tests.smtp import SmtpServer

CONSENT = Consent(source="test", text="Yes, send me the course.")


def sign_up(svc: Services, *emails: str) -> None:
    with svc.sessions() as session:
        for email in emails:
            subscribe(
                session,
                svc.content.library(),
                "tiny",
                email,
                svc.clock(),
                consent=CONSENT,
                first_name="Ada",
                confirmed=True,
            )
        session.commit()


@pytest.mark.postgres
def test_a_dispatch_connection_killed_mid_pass_raises_its_own_error_not_the_reset(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, postgres_url, smtp_url=smtp_server.url), clock)
    sign_up(svc, "ada@example.org", "bob@example.org", "cy@example.org")
    killer = make_engine(postgres_url, isolation_level="AUTOCOMMIT")
    killed: list[int] = []

    def kill_the_pass(outcome: Outcome) -> None:
        """After the first hand-off, end every other session of this database (the pass's)."""
        if killed:
            return
        with killer.connect() as conn:
            killed.extend(
                conn.scalars(
                    text(
                        "SELECT pg_terminate_backend(pid)::int FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            )

    with pytest.raises(OperationalError) as raised:
        svc.dispatcher().run_pass(clock(), progress=kill_the_pass)
    killer.dispose()
    assert killed
    assert "terminat" in str(raised.value) or "closed" in str(raised.value)
    assert "RESET" not in str(raised.value)
    assert len(smtp_server.messages) == 1
