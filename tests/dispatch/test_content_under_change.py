"""Content that changes under a running worker: lesson files that vanish and come back, a
lesson rewritten in place while a pass reads it, an author saving during a pass."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.dispatch import Outcome, OutcomeStatus
from drip.ops.stats import why_waiting
from drip.services import Services, build_services
from drip.store.models import Enrollment, EnrollmentStatus
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
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock, folder: Path
) -> Services:
    settings = make_settings(
        tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=folder.parent, batch_size=1
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
    [
        ("03-third.md", "02-second.md"),
        ("03-third.md", "02-second.md", "01-welcome.md"),
        ("03-third.md", "02-second.md", "01-welcome.md", "magnet.md", "sequence.yaml"),
    ],
    ids=["some-lessons", "every-lesson", "the-whole-folder"],
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
    expected = {
        2: "lesson 'third', next for this reader, is no longer in",
        3: "sequence 'tiny' has problems",
        5: "sequence 'tiny' does not exist in",
    }[len(vanished)]
    assert all(reason is not None and expected in reason for _, reason in held)
    with svc.sessions() as session:
        for enrollment in session.scalars(select(Enrollment)):
            why = why_waiting(
                enrollment, svc.content.library().get("tiny"), sequence_paused=False, now=clock()
            )
            assert why.reason.startswith("Held: "), why.reason

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


def rewrite(path: Path, body: str) -> None:
    """Save a lesson as the studio does: a new file renamed over the old one."""
    fresh = path.with_name(f".{path.name}.new")
    fresh.write_text(f'---\nsubject: "Lesson two"\ndelay: 2d\n---\n{body}\n', encoding="utf-8")
    os.replace(fresh, path)


def test_every_reader_of_a_pass_gets_the_text_the_pass_read_first(
    svc: Services, smtp_server: SmtpServer, clock: FrozenClock, folder: Path
) -> None:
    dispatcher = svc.dispatcher()
    dispatcher.run_pass(clock())
    clock.set(next_due(svc) or clock())
    lesson = folder / "02-second.md"

    def author_saves(outcome: Outcome) -> None:  # between the readers of one pass
        rewrite(lesson, f"Rewritten after {outcome.email}, and longer than the first text.")

    dispatcher.run_pass(clock(), progress=author_saves)
    second = [m for m in smtp_server.messages if m.subject == "Lesson two"]
    assert len(second) == 3
    assert {"The second lesson, with" in m.text() for m in second} == {True}
    assert not any("Rewritten" in m.text() for m in second)


def test_a_lesson_cut_short_while_it_is_read_is_refused_and_sent_whole_once_saved(
    svc: Services,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dispatcher = svc.dispatcher()
    dispatcher.run_pass(clock())
    clock.set(next_due(svc) or clock())
    lesson = folder / "02-second.md"
    whole = lesson.read_bytes()
    real_stat = os.stat

    def editor_truncates_in_place(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        """Right after drip looks at the size of the file it is about to read, an editor
        opens it with O_TRUNC and has written only part of it: a real write to the file."""
        found = real_stat(path, *args, **kwargs)
        reading = sys._getframe(1).f_code.co_name == "read_whole"
        if reading and str(path) == str(lesson) and real_stat(lesson).st_size == len(whole):
            with lesson.open("r+b") as handle:
                handle.truncate(0)
                handle.write(whole[: len(whole) - 12])
        return found

    os.utime(lesson)  # the editor has begun: the file's time moved, drip reads it again
    monkeypatch.setattr(os, "stat", editor_truncates_in_place)
    report = dispatcher.run_pass(clock())
    monkeypatch.undo()
    assert [m.subject for m in smtp_server.messages].count("Lesson two") == 0
    assert {o.status for o in report.outcomes} == {OutcomeStatus.HELD}
    assert lesson.stat().st_size < len(whole)  # it really was cut short on disk
    with svc.sessions() as session:
        reasons = {e.last_error for e in session.scalars(select(Enrollment))}
    assert reasons == {"sequence 'tiny' has problems: the admin's Sequences page says what to fix"}

    lesson.write_bytes(whole)  # the editor finishes its write
    dispatcher.run_pass(clock.advance(minutes=1))
    second = [m for m in smtp_server.messages if m.subject == "Lesson two"]
    assert len(second) == 3
    assert all("bold" in m.text() and "words." in m.text() for m in second)


def test_a_file_deleted_while_the_folder_is_listed_does_not_stop_the_pass(
    svc: Services, smtp_server: SmtpServer, clock: FrozenClock, folder: Path, monkeypatch: Any
) -> None:
    real_scandir = os.scandir

    class Listed(list[os.DirEntry[str]]):
        def __enter__(self) -> Listed:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def folder_being_deleted(path: Any = ".") -> Listed:
        """List the folder, then the file manager deletes a lesson before drip looks at it."""
        with real_scandir(path) as listing:
            entries = Listed(listing)
        if str(path) == str(folder):
            (folder / "03-third.md").unlink(missing_ok=True)
        return entries

    os.utime(folder / "02-second.md")  # the content changed: drip looks at the folder again
    monkeypatch.setattr(os, "scandir", folder_being_deleted)
    report = svc.dispatcher().run_pass(clock())
    monkeypatch.undo()
    assert [m.subject for m in smtp_server.messages] == ["Welcome, Ada"] * 3
    assert len(report.outcomes) == 3
