"""Content owners edit, add and reorder lessons while readers are mid-course."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.services import Services, build_services
from drip.store.models import Delivery
from tests.conftest import TESTS, advance_through_due_times, make_settings
from tests.smtp import SmtpServer


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
        tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=folder.parent
    )
    service = build_services(settings, clock)
    with service.sessions() as session:
        subscribe(
            session,
            service.content.library(),
            "tiny",
            "ada@example.org",
            clock(),
            consent=Consent("test", "ok"),
            first_name="Ada",
            confirmed=True,
        )
        session.commit()
    return service


def lesson(path: Path, subject: str, delay: str, body: str = "Body.") -> None:
    path.write_text(f'---\nsubject: "{subject}"\ndelay: {delay}\n---\n{body}\n')


def run(svc: Services, clock: FrozenClock, days: int) -> None:
    for _ in range(days * 24):
        svc.dispatcher().run_pass(clock())
        clock.advance(hours=1)


def test_edit_reaches_only_lessons_not_yet_sent(
    svc: Services, smtp_server: SmtpServer, clock: FrozenClock, folder: Path
) -> None:
    run(svc, clock, 1)  # the welcome has gone out
    lesson(folder / "01-welcome.md", "Welcome (edited)", "0")
    lesson(folder / "02-second.md", "Lesson two (edited)", "2d", "New words.")
    advance_through_due_times(svc, clock)
    assert [m.subject for m in smtp_server.messages] == [
        "Welcome, Ada",
        "Lesson two (edited)",
        "Lesson three",
    ]
    assert "New words." in smtp_server.messages[1].text()


def test_each_delivery_records_the_version_it_sent(
    svc: Services, clock: FrozenClock, folder: Path
) -> None:
    run(svc, clock, 1)
    before = svc.content.library().sequences["tiny"].lesson("second")
    lesson(folder / "02-second.md", "Lesson two", "2d", "Changed before it was sent.")
    after = svc.content.library().sequences["tiny"].lesson("second")
    assert before is not None and after is not None and before.version != after.version
    advance_through_due_times(svc, clock)
    with svc.sessions() as session:
        rows = session.execute(select(Delivery.lesson, Delivery.lesson_version))
        versions = {row.lesson: row.lesson_version for row in rows}
    assert versions["second"].startswith(after.version)


def test_a_lesson_added_mid_course_is_sent_and_nothing_repeats(
    svc: Services, smtp_server: SmtpServer, clock: FrozenClock, folder: Path
) -> None:
    run(svc, clock, 3)  # welcome and lesson two sent
    lesson(folder / "02-extra.md", "Inserted before two", "1d")  # numbered before a sent one
    shutil.move(folder / "02-second.md", folder / "05-second.md")  # reordered: now last
    lesson(folder / "04-bonus.md", "Bonus", "1d")
    advance_through_due_times(svc, clock)
    subjects = [m.subject for m in smtp_server.messages]
    assert subjects[:2] == ["Welcome, Ada", "Lesson two"]
    assert sorted(subjects[2:]) == sorted(["Inserted before two", "Lesson three", "Bonus"])
    assert len(subjects) == len(set(subjects))


def test_after_downtime_the_due_lesson_comes_not_a_burst(
    svc: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    run(svc, clock, 1)
    clock.advance(days=30)  # nobody ran a pass for a month
    svc.dispatcher().run_pass(clock())
    assert [m.subject for m in smtp_server.messages] == ["Welcome, Ada", "Lesson two"]
