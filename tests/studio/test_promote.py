"""Promoting an experiment's winner (drip.studio.promote): the lesson file rewritten as the
winner, the variant files gone, one git commit by the operator; refused over a newer file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from drip.content.loader import load_sequence
from drip.core.clock import FrozenClock
from drip.services import build_services
from drip.studio.editing import Studio
from drip.studio.outcomes import Conflict, Saved, StudioError, read
from drip.studio.promote import Promoter
from tests.conftest import CHEAP_HASHER, TESTS, make_settings
from tests.smtp import SmtpServer

OPERATOR = "editor@example.org"
LESSON = (
    "---\n"
    "# the second lesson, under test\n"
    'subject: "Lesson two"\n'
    "delay: 2d\n"
    "goal: tag:has-dates\n"
    "variants:\n"
    "  b:\n"
    '    subject: "Lesson two, shorter"\n'
    '    preheader: "Two minutes"\n'
    "---\n"
    "The second lesson.\n"
)


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=Setup", "-c", "user.email=setup@x.org", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The tiny course, its second lesson under test with variants b (front matter) and c
    (a body file), in a git repository of its own."""
    repo = tmp_path / "courses"
    folder = repo / "sequences" / "tiny"
    shutil.copytree(TESTS / "sequences" / "tiny", folder)
    (folder / "02-second.md").write_text(LESSON)
    (folder / "02-second.c.md").write_text("A whole other second lesson.\n")
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "The tiny course")
    return folder


@pytest.fixture
def promoter(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock, folder: Path
) -> Promoter:
    settings = make_settings(
        tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=folder.parent
    )
    svc = build_services(settings, clock, password_hasher=CHEAP_HASHER)
    svc.engine.dispose()
    return Promoter(svc.settings, svc.links)


def promote(promoter: Promoter, folder: Path, winner: str, clock: FrozenClock) -> object:
    version = read(folder / "02-second.md").version
    return promoter.promote("tiny", "second", winner, version, OPERATOR, clock())


def test_a_front_matter_variant_becomes_the_lessons_own_subject_and_preheader(
    promoter: Promoter, folder: Path, clock: FrozenClock
) -> None:
    outcome = promote(promoter, folder, "b", clock)
    assert isinstance(outcome, Saved) and outcome.commit
    assert (folder / "02-second.md").read_text() == (
        "---\n"
        "# the second lesson, under test\n"
        'subject: "Lesson two, shorter"\n'
        "delay: 2d\n"
        'preheader: "Two minutes"\n'
        "---\n"
        "The second lesson.\n"
    )
    assert not (folder / "02-second.c.md").exists()  # the experiment is over
    assert git(folder, "log", "-1", "--format=%ae|%s") == (
        f"{OPERATOR}|Promote variant b of tiny/02-second.md: Lesson two, shorter\n"
    )
    assert git(folder, "status", "--porcelain") == ""
    sequence, problems = load_sequence(folder)
    assert problems == [] and sequence is not None
    assert sequence.lessons[1].variants == () and sequence.lessons[1].goal is None


def test_a_body_file_variant_replaces_the_lessons_body(
    promoter: Promoter, folder: Path, clock: FrozenClock
) -> None:
    outcome = promote(promoter, folder, "c", clock)
    assert isinstance(outcome, Saved)
    text = (folder / "02-second.md").read_text()
    assert text.endswith("---\nA whole other second lesson.\n")
    assert 'subject: "Lesson two"' in text and "variants" not in text
    assert not (folder / "02-second.c.md").exists()


def test_keeping_the_lesson_itself_ends_the_experiment(
    promoter: Promoter, folder: Path, clock: FrozenClock
) -> None:
    assert isinstance(promote(promoter, folder, "a", clock), Saved)
    text = (folder / "02-second.md").read_text()
    assert 'subject: "Lesson two"' in text and "goal" not in text and "variants" not in text
    assert text.endswith("---\nThe second lesson.\n")


def test_a_lesson_changed_since_the_page_was_shown_is_not_overwritten(
    promoter: Promoter, folder: Path, clock: FrozenClock
) -> None:
    version = read(folder / "02-second.md").version
    path = folder / "02-second.md"
    path.write_text(path.read_text().replace("The second lesson.", "Edited meanwhile."))
    outcome = promoter.promote("tiny", "second", "b", version, OPERATOR, clock())
    assert isinstance(outcome, Conflict)
    assert "Edited meanwhile." in path.read_text() and "variants" in path.read_text()


def test_promoting_a_variant_the_lesson_does_not_have_is_refused(
    promoter: Promoter, folder: Path, clock: FrozenClock
) -> None:
    with pytest.raises(StudioError, match="has no variant 'd'"):
        promote(promoter, folder, "d", clock)
    with pytest.raises(StudioError, match="no variants to choose from"):
        promoter.promote("tiny", "third", "b", "x", OPERATOR, clock())


def test_moving_a_lesson_in_the_studio_takes_its_variant_file_along(
    promoter: Promoter, folder: Path, clock: FrozenClock
) -> None:
    studio = Studio(promoter.settings, promoter.links)
    outcome = studio.move("tiny", "second", 1, OPERATOR, clock())
    assert isinstance(outcome, Saved)
    assert (folder / "03-second.c.md").read_text() == "A whole other second lesson.\n"
    assert not (folder / "02-second.c.md").exists()
    sequence, problems = load_sequence(folder)
    assert problems == [] and sequence is not None
    assert [v.name for v in sequence.lesson("second").variants] == ["b", "c"]  # type: ignore[union-attr]
    assert git(folder, "status", "--porcelain") == ""


def test_removing_a_lesson_in_the_studio_removes_its_variant_files(
    promoter: Promoter, folder: Path, clock: FrozenClock
) -> None:
    studio = Studio(promoter.settings, promoter.links)
    version = read(folder / "02-second.md").version
    assert isinstance(studio.remove("tiny", "second", version, OPERATOR, clock()), Saved)
    assert sorted(p.name for p in folder.glob("0*.md")) == ["01-welcome.md", "02-third.md"]
    assert git(folder, "status", "--porcelain") == ""
