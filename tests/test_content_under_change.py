"""Content that changes under a running worker: lesson files that vanish and come back, a
lesson rewritten in place while a pass reads it, an author saving during a pass."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from drip.clock import FrozenClock
from drip.models import Enrollment, EnrollmentStatus
from drip.services import Services, build_services
from drip.subscriptions import Consent, subscribe
from tests.conftest import TESTS, make_settings, next_due
from tests.smtp import SmtpServer

READERS = ("ada@example.org", "bob@example.org", "cy@example.org")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences" / "tiny", root / "tiny")
    return root / "tiny"


@pytest.fixture
def svc(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock, folder: Path
) -> Services:
    settings = make_settings(
        tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=folder.parent, batch_size=1
    )
    service = build_services(settings, clock)
    with service.sessions() as session:
        for email in READERS:
            subscribe(
                session,
                service.content.library(),
                "tiny",
                email,
                clock(),
                consent=Consent("test", "ok"),
                first_name="Ada",
                confirmed=True,
            )
        session.commit()
    return service


def passes_until_lesson_three_is_due(svc: Services, clock: FrozenClock) -> None:
    """Welcome and lesson two go out; the clock then stands where lesson three is due."""
    dispatcher = svc.dispatcher()
    for _ in range(2):
        dispatcher.run_pass(clock())
        due = next_due(svc)
        assert due is not None
        clock.set(max(due, clock()))


def enrollments(svc: Services) -> list[tuple[EnrollmentStatus, str | None]]:
    with svc.sessions() as session:
        return [
            (e.status, e.last_error)
            for e in session.scalars(select(Enrollment).order_by(Enrollment.id))
        ]


def subjects(smtp_server: SmtpServer) -> list[str]:
    return [m.subject for m in smtp_server.messages]


@pytest.mark.parametrize(
    "vanished",
    [("03-third.md", "02-second.md"), ("03-third.md", "02-second.md", "01-welcome.md")],
    ids=["some-lessons", "every-lesson"],
)
def test_lessons_that_vanish_hold_their_readers_and_they_go_on_the_pass_after_the_files_return(
    svc: Services,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    folder: Path,
    tmp_path: Path,
    vanished: tuple[str, ...],
) -> None:
    passes_until_lesson_three_is_due(svc, clock)
    assert len(smtp_server.messages) == 6  # welcome and lesson two, to each of the three
    backup = tmp_path / "backup"
    shutil.copytree(folder, backup)
    for name in vanished:  # the folder being deleted file by file, sequence.yaml last
        (folder / name).unlink()
    dispatcher = svc.dispatcher()
    dispatcher.run_pass(clock())
    for _ in range(8):
        dispatcher.run_pass(clock.advance(minutes=20))  # the last pass held them to +15 min
    assert subjects(smtp_server)[6:] == []
    held = enrollments(svc)
    assert {status for status, _ in held} == {EnrollmentStatus.ACTIVE}  # nobody completed
    for _, reason in held:
        assert reason is not None
        assert (
            "lesson 'third', next for this reader, is no longer in" in reason
            if len(vanished) == 2
            else "sequence 'tiny' has problems" in reason
        )

    shutil.copytree(backup, folder, dirs_exist_ok=True)
    dispatcher.run_pass(clock.advance(minutes=1))  # well inside the 15-minute hold
    assert subjects(smtp_server)[6:] == ["Lesson three"] * 3
    assert enrollments(svc) == [(EnrollmentStatus.COMPLETED, None)] * 3


def test_a_reader_is_completed_only_by_receiving_the_last_lesson(
    svc: Services, smtp_server: SmtpServer, clock: FrozenClock, folder: Path
) -> None:
    passes_until_lesson_three_is_due(svc, clock)
    (folder / "03-third.md").unlink()  # the course now ends at lesson two, which they had
    for _ in range(3):
        svc.dispatcher().run_pass(clock())
        clock.advance(hours=1)
    for status, reason in enrollments(svc):
        assert status == EnrollmentStatus.ACTIVE
        assert reason is not None and "pause and resume the reader to complete" in reason
    assert len(smtp_server.messages) == 6
