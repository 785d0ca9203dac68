"""Text SQLite cannot decode as UTF-8 (a manual fix, an import bug) costs one reader a
replacement character, not everyone their mail. Real SQLite, real SMTP (aiosmtpd)."""

from __future__ import annotations

from sqlalchemy import text

from drip.core.clock import FrozenClock
from drip.services import Services
from tests.conftest import enroll
from tests.smtp import SmtpServer


def test_a_first_name_of_invalid_utf8_renders_replaced_and_the_pass_sends_to_everyone(
    services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    for email in ("ada@example.org", "bob@example.org", "cy@example.org"):
        enroll(services, email, first_name="Reader")
    with services.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE subscribers SET first_name = CAST(x'ff45' AS TEXT) "
                "WHERE email = 'bob@example.org'"
            )
        )

    services.dispatcher().run_pass(clock())

    assert sorted(m.recipients[0] for m in smtp_server.messages) == [
        "ada@example.org",
        "bob@example.org",
        "cy@example.org",
    ]
    (bob,) = smtp_server.to("bob@example.org")
    assert bob.subject == "Welcome, \ufffdE"
    assert "Hi \ufffdE," in bob.text()
    (ada,) = smtp_server.to("ada@example.org")
    assert ada.subject == "Welcome, Reader"
