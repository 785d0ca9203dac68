"""A sequence whose lesson cannot be rendered holds its own readers, with the reason, and
every other sequence is sent; a pass run for a simulated instant is no heartbeat."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from drip.app import create_app
from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.services import Services, build_services
from drip.store.models import Enrollment
from tests.conftest import TESTS, json_body, make_settings
from tests.smtp import SmtpServer

BROKEN_HTML = "Body </mj-text></mj-column></mj-section></mj-body><mj-body> x\n"


def test_a_lesson_that_cannot_be_rendered_holds_its_readers_and_the_rest_are_sent(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    folder = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", folder)
    shutil.copytree(folder / "tiny", folder / "other")
    (folder / "tiny" / "01-welcome.md").write_text(
        '---\nsubject: "Welcome"\ndelay: 0\n---\n' + BROKEN_HTML
    )
    svc: Services = build_services(
        make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=folder), clock
    )
    library = svc.content.library()
    assert {"tiny", "other"} <= set(library.sequences)  # it parses: only rendering fails
    with svc.sessions() as session:
        for slug, email in (("tiny", "ada@example.org"), ("other", "bo@example.org")):
            subscribe(
                session,
                library,
                slug,
                email,
                clock(),
                consent=Consent(source="test", text="yes"),
                confirmed=True,
            )
        session.commit()

    report = svc.dispatcher().run_pass(clock() + timedelta(hours=1))

    assert [m.recipients for m in smtp_server.messages] == [["bo@example.org"]]
    assert report.count("held") == 1
    with svc.sessions() as session:
        held = session.scalars(select(Enrollment).where(Enrollment.sequence == "tiny")).one()
        assert held.status == "active" and held.due_at is not None
        assert held.last_error is not None
        assert held.last_error.startswith("tiny/welcome cannot be rendered (run `drip check`)")
    svc.engine.dispose()


def test_a_pass_run_for_a_future_instant_is_not_a_heartbeat_from_the_future(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    app: Flask = create_app(
        make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url), clock=clock
    )
    svc: Services = app.extensions["drip"]
    svc.dispatcher().run_pass(clock() + timedelta(days=45))  # drip dispatch --now <later>
    clock.advance(seconds=30)

    health = json_body(app.test_client().get("/healthz"))

    assert health["last_pass_age_seconds"] == 30
    app.extensions["drip"].engine.dispose()
