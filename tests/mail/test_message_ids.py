"""Message-IDs: every kind of message has a random part and a signature under the secret key,
so two installations (or a database restored or moved) never send the same id to the same
person, and a retried hand-off of the same row reuses the id written before it."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select

from drip.audience.subscriptions import confirm
from drip.core.clock import FrozenClock
from drip.dispatch.broadcasts import parse_broadcast, schedule
from drip.dispatch.fresh_links import request_magnet_link
from drip.mail.message_ids import read_message_ids
from drip.services import Services, build_services
from drip.store.models import Enrollment, LinkRequest
from tests.conftest import enroll, make_settings
from tests.dispatch.test_chaining import library_with, run_days
from tests.smtp import SmtpServer

NEWS = """---
subject: "News for every reader"
to: [tiny]
---
Hello. [Leave]({{ unsubscribe_url }})
"""
ADA = "ada@example.org"


def installation(
    tmp_path: Path, database: Path, name: str, smtp: SmtpServer, clock: FrozenClock
) -> Services:
    """A fresh installation: its own database, secret key and folder, one course with an
    offer after it."""
    home = tmp_path / name
    home.mkdir()
    shutil.copy(database, home / "drip.sqlite3")
    settings = make_settings(
        home,
        f"sqlite:///{home / 'drip.sqlite3'}",
        smtp_url=smtp.url,
        secret_key=f"secret-of-{name}",
        sequences_dir=library_with(home, "on_complete: {offer: next-course}\n"),
    )
    return build_services(settings, clock)


def send_every_kind(svc: Services, clock: FrozenClock, smtp: SmtpServer) -> str:
    """Confirmation (its first try refused for now), lessons, a fresh link, a broadcast and
    the offer, all to ADA; returns the confirmation's id as written before its first try."""
    enrollment_id = enroll(svc, ADA, confirmed=False, first_name="Ada")
    smtp.answer(ADA, "451 4.3.0 mailbox busy, try again later")
    svc.dispatcher().run_pass(clock())
    assert smtp.to(ADA) == []
    with svc.sessions() as session:
        written = session.scalars(
            select(Enrollment.pending_message_id).where(Enrollment.id == enrollment_id)
        ).one()
    assert written
    clock.advance(minutes=5)
    svc.dispatcher().run_pass(clock())  # the retry of the same confirmation
    library = svc.content.library()
    with svc.sessions() as session:
        enrollment = confirm(session, library, enrollment_id, clock())
        assert request_magnet_link(session, enrollment, clock())
        session.commit()
        schedule(
            session, library, parse_broadcast(NEWS, Path("news.md"), library), clock(), clock()
        )
    run_days(svc, clock, 8)
    return written


def test_two_installations_share_no_message_id_for_any_kind_and_a_retry_reuses_its_id(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    received: dict[str, dict[str, str]] = {}  # installation -> Message-ID -> subject
    for name in ("first", "second"):
        smtp = SmtpServer()
        try:
            own_clock = FrozenClock(clock())
            svc = installation(tmp_path, database, name, smtp, own_clock)
            written = send_every_kind(svc, own_clock, smtp)
            messages = smtp.to(ADA)
            received[name] = {str(m.message["Message-ID"]): m.subject for m in messages}
            svc.engine.dispose()
        finally:
            smtp.stop()
        confirmation = messages[0]
        assert "onfirm" in confirmation.subject
        assert confirmation.message["Message-ID"] == written  # the retry reused it
        for mid in received[name]:  # every one signed by this installation's key
            assert read_message_ids(f"secret-of-{name}", mid), mid
            other = "second" if name == "first" else "first"
            assert not read_message_ids(f"secret-of-{other}", mid), mid

    first, second = received["first"], received["second"]
    assert sorted(first.values()) == sorted(second.values())  # the same messages in both
    labels = {signed.label for mid in first for signed in read_message_ids("secret-of-first", mid)}
    assert labels == {  # every kind
        "confirm",
        "welcome",
        "second",
        "third",
        "magnet-link",
        "broadcast-1",
        "offer-next-course",
    }
    assert len(first) == len(second) == 7
    assert set(first).isdisjoint(second)


def test_a_fresh_link_refused_for_now_is_sent_again_under_the_id_written_before_its_first_try(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    smtp = SmtpServer()
    try:
        svc = installation(tmp_path, Path(sqlite_url.removeprefix("sqlite:///")), "a", smtp, clock)
        enrollment_id = enroll(svc, ADA, first_name="Ada")
        svc.dispatcher().run_pass(clock())  # the welcome
        with svc.sessions() as session:
            enrollment = session.get(Enrollment, enrollment_id)
            assert enrollment is not None and request_magnet_link(session, enrollment, clock())
            session.commit()
        smtp.answer(ADA, "451 4.3.0 mailbox busy, try again later")
        svc.dispatcher().run_pass(clock())  # the fresh link goes first, and is refused
        with svc.sessions() as session:
            (written,) = session.scalars(select(LinkRequest.message_id)).all()
        assert written and len(smtp.to(ADA)) == 1
        clock.advance(minutes=5)
        svc.dispatcher().run_pass(clock())

        link = smtp.to(ADA)[-1]
        assert read_message_ids("secret-of-a", str(link.message["Message-ID"]))[0].label == (
            "magnet-link"
        )
        assert link.message["Message-ID"] == written
        svc.engine.dispose()
    finally:
        smtp.stop()
