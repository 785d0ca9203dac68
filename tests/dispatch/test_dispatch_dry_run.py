"""`drip dispatch --dry-run` is the plan of a real pass without the send, so the two agree
reader for reader, whatever kind of reader is due."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from drip.audience.controls import set_sequence_paused
from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.dispatch import OutcomeStatus, PassReport
from drip.services import Services, build_services
from drip.store.models import Delivery, DeliveryStatus, Enrollment
from tests.conftest import TESTS, make_settings
from tests.smtp import SmtpServer

CONSENT = Consent(source="test", text="Yes, send me the course.")


def readers_of_every_kind(svc: Services, root: Path) -> dict[str, int]:
    """One due reader of each kind a pass can meet, by kind: their enrollment ids."""
    now = svc.clock()
    library = svc.content.library()
    ids: dict[str, int] = {}
    with svc.sessions() as session:

        def enrol(kind: str, email: str, slug: str = "tiny", confirmed: bool = True) -> Enrollment:
            enrollment = subscribe(
                session, library, slug, email, now, consent=CONSENT, confirmed=confirmed
            )
            session.flush()
            ids[kind] = enrollment.id
            return enrollment

        def had(enrollment: Enrollment, *lessons: str) -> None:
            for lesson in lessons:
                session.add(
                    Delivery(
                        enrollment_id=enrollment.id,
                        lesson=lesson,
                        lesson_version="v",
                        status=DeliveryStatus.SENT,
                        attempts=1,
                        message_id=f"<{enrollment.id}.{lesson}@test>",
                        created_at=now,
                        updated_at=now,
                        sent_at=now,
                    )
                )
            enrollment.due_at = now

        enrol("new", "new@example.org", confirmed=False)
        enrol("welcome due", "welcome@example.org")
        had(enrol("second due", "second@example.org"), "welcome")
        had(enrol("done", "done@example.org"), "welcome", "second", "third")
        enrol("suppressed", "blocked@example.org").subscriber.suppressed_at = now
        enrol("paused sequence", "paused@example.org", slug="paused")
        enrol("broken sequence", "broken@example.org", slug="broken")
        enrol("non-ASCII, confirmed", "zoë@example.org")
        enrol("non-ASCII, new", "jürgen@example.org", confirmed=False)
        enrol("never confirmed", "late@example.org", confirmed=False).created_at = now - timedelta(
            days=svc.settings.confirm_days + 1
        )
        session.commit()
        set_sequence_paused(session, "paused", True, now)
        session.commit()
    (root / "broken" / "02-second.md").write_text("---\nsubject: Two\ndelay: soon\n---\nBody\n")
    assert svc.content.library().get("broken") is None
    return ids


def by_reader(report: PassReport) -> dict[int, tuple[str, str]]:
    """(status, lesson) of each reader, a would-send counted as the send it stands for."""
    return {
        o.enrollment_id: ("sent" if o.status == OutcomeStatus.WOULD_SEND else o.status, o.lesson)
        for o in report.outcomes
    }


def test_the_dry_run_says_what_the_real_pass_then_does_for_every_kind_of_reader(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    root = tmp_path / "sequences"
    for slug in ("tiny", "paused", "broken"):
        shutil.copytree(TESTS / "sequences" / "tiny", root / slug)
    svc = build_services(
        make_settings(tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=root), clock
    )
    ids = readers_of_every_kind(svc, root)
    dispatcher = svc.dispatcher()

    dry = by_reader(dispatcher.run_pass(clock(), dry_run=True))
    with svc.sessions() as session:
        untouched = session.scalars(select(Delivery.id)).all()
    real = by_reader(dispatcher.run_pass(clock()))

    assert dry == real
    assert {kind: real.get(ident) for kind, ident in ids.items()} == {
        "new": ("sent", "confirm"),
        "welcome due": ("sent", "welcome"),
        "second due": ("sent", "second"),
        "done": ("completed", "-"),
        "suppressed": ("suppressed", "welcome"),
        "paused sequence": None,  # not due while the sequence is paused
        "broken sequence": ("held", "welcome"),
        "non-ASCII, confirmed": ("failed", "welcome"),
        "non-ASCII, new": ("failed", "confirm"),
        "never confirmed": None,  # the pass expires the sign-up before it claims
    }
    assert len(untouched) == 4  # the dry run wrote no delivery row
    assert sorted(r for m in smtp_server.messages for r in m.recipients) == [
        "new@example.org",
        "second@example.org",
        "welcome@example.org",
    ]
    svc.engine.dispose()
