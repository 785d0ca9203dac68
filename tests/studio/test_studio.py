"""The studio's domain (drip.studio.editing): checked atomic saves, conflicts, adding, moving and
removing lessons while readers are mid-course, and each change a git commit by the operator.
Everything runs on a copy of the tiny course in a real temporary git repository."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from drip.content.loader import load_sequence, load_sequences
from drip.content.names import name_for
from drip.core.clock import FrozenClock
from drip.services import Services, build_services
from drip.store.models import Delivery
from drip.studio.editing import Studio
from drip.studio.lesson_format import LessonFields, lesson_fields, lesson_text
from drip.studio.outcomes import Conflict, Refused, Saved, StudioError, read
from drip.studio.save_path import _rename_all
from drip.studio.yaml_forms import sequence_settings, settings_text
from tests.conftest import CHEAP_HASHER, TESTS, advance_through_due_times, enroll, make_settings
from tests.smtp import SmtpServer

OPERATOR = "editor@example.org"


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=Setup", "-c", "user.email=setup@x.org", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the tiny course in a git repository of its own, committed."""
    repo = tmp_path / "courses"
    shutil.copytree(TESTS / "sequences" / "tiny", repo / "sequences" / "tiny")
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "The tiny course")
    return repo / "sequences"


@pytest.fixture
def folder(root: Path) -> Path:
    return root / "tiny"


@pytest.fixture
def svc(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock, root: Path
) -> Services:
    settings = make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=root)
    return build_services(settings, clock, password_hasher=CHEAP_HASHER)


@pytest.fixture
def studio(svc: Services) -> Studio:
    return Studio(svc.settings, svc.links)


def edited(path: Path, **changes: str) -> str:
    fields = lesson_fields(path.read_text())
    return lesson_text(
        path.read_text(),
        LessonFields(
            subject=changes.get("subject", fields.subject),
            delay=changes.get("delay", fields.delay),
            preheader=changes.get("preheader", fields.preheader),
            body=changes.get("body", fields.body),
        ),
    )


def commits(folder: Path) -> int:
    return int(git(folder, "rev-list", "--count", "HEAD").strip())


def test_a_save_replaces_the_file_atomically_and_keeps_its_mode(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    path = folder / "02-second.md"
    os.chmod(path, 0o640)
    opened = read(path)
    text = edited(path, subject="Lesson two: the plan", body="A new body.\n")
    outcome = studio.save(path, text, opened.version, OPERATOR, clock())
    assert isinstance(outcome, Saved), outcome
    assert path.read_text() == text
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert outcome.version == read(path).version != opened.version
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []
    sequence, problems = load_sequence(folder)
    assert problems == [] and sequence is not None
    second = sequence.lesson("second")
    assert second is not None and second.subject == "Lesson two: the plan"


def test_a_save_keeps_the_front_matter_comments_and_quotes_what_yaml_would_misread(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    path = folder / "02-second.md"
    path.write_text('---\nsubject: "Lesson two"   # what the inbox shows\ndelay: 2d\n---\nBody.\n')
    outcome = studio.save(path, edited(path, subject="yes"), read(path).version, OPERATOR, clock())
    assert isinstance(outcome, Saved), outcome
    assert "# what the inbox shows" in path.read_text()
    assert "\ndelay: 2d\n" in path.read_text()  # an unchanged field stays as it was written
    sequence, _ = load_sequence(folder)
    assert sequence is not None
    lesson = sequence.lesson("second")
    assert lesson is not None and lesson.subject == "yes"  # not True


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"body": "Hi {{ frist_name }},\n\nText.\n"}, "unknown variable 'frist_name'"),
        ({"delay": "tomorrow"}, "bad delay 'tomorrow'"),
        ({"subject": ""}, "missing subject"),
    ],
)
def test_a_save_that_would_fail_drip_check_is_refused_and_the_file_is_unchanged(
    studio: Studio,
    folder: Path,
    clock: FrozenClock,
    change: dict[str, str],
    expected: str,
) -> None:
    path = folder / "02-second.md"
    before = path.read_bytes()
    count = commits(folder)
    outcome = studio.save(path, edited(path, **change), read(path).version, OPERATOR, clock())
    assert isinstance(outcome, Refused)
    assert any(expected in p.message and p.path == path for p in outcome.errors), outcome
    assert path.read_bytes() == before
    assert commits(folder) == count


def test_a_refused_problem_names_the_line_of_the_file_it_is_on(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    path = folder / "02-second.md"
    text = edited(path, body="First line.\n\nThird line has {{ frist_name }}.\n")
    outcome = studio.save(path, text, read(path).version, OPERATOR, clock())
    assert isinstance(outcome, Refused)
    line = text.splitlines().index("Third line has {{ frist_name }}.") + 1
    assert [p.line for p in outcome.errors] == [line]


def test_a_save_over_a_file_changed_on_disk_is_a_conflict_carrying_both_texts(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    path = folder / "02-second.md"
    opened = read(path)
    theirs = edited(path, body="Changed in another window.\n")
    path.write_text(theirs)
    mine = edited(path, body="My change.\n")
    outcome = studio.save(path, mine, opened.version, OPERATOR, clock())
    assert isinstance(outcome, Conflict)
    assert outcome.disk is not None and outcome.disk.text == theirs
    assert outcome.yours == mine
    assert path.read_text() == theirs


def test_a_broken_sequence_can_be_fixed_one_file_at_a_time(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    """Another file's old error does not block a save that does not add one."""
    (folder / "03-third.md").write_text("---\nsubject: Three\ndelay: soon\n---\nBody.\n")
    path = folder / "02-second.md"
    outcome = studio.save(
        path, edited(path, body="Fixed.\n"), read(path).version, OPERATOR, clock()
    )
    assert isinstance(outcome, Saved), outcome


def test_each_save_is_a_commit_by_the_operator(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    path = folder / "02-second.md"
    outcome = studio.save(path, edited(path, body="New.\n"), read(path).version, OPERATOR, clock())
    assert isinstance(outcome, Saved) and outcome.commit is not None
    line = git(folder, "log", "-1", "--format=%H|%an|%ae|%cn|%ce|%s").strip()
    assert (
        line
        == f"{outcome.commit}|{OPERATOR}|{OPERATOR}|{OPERATOR}|{OPERATOR}|Edit tiny/02-second.md"
    )
    assert git(folder, "status", "--porcelain").strip() == ""


def test_a_commit_is_authored_by_an_address_alone_never_a_name_before_one(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    """An account from before addresses were checked may hold a name and someone else's
    address before "@localhost": the file is saved, but git records nobody by that text."""
    before = git(folder, "log", "-1", "--format=%H").strip()
    path = folder / "02-second.md"
    posing = "Linus Torvalds <torvalds@linux-foundation.org> x@localhost"
    outcome = studio.save(path, edited(path, body="New.\n"), read(path).version, posing, clock())
    assert isinstance(outcome, Saved) and outcome.commit is None
    assert outcome.git_error is not None and "not a plain email address" in outcome.git_error
    assert "New." in path.read_text()
    assert git(folder, "log", "-1", "--format=%H").strip() == before
    assert "torvalds" not in git(folder, "log", "--format=%an|%ae|%cn|%ce")


def test_with_git_off_a_save_writes_the_file_and_commits_nothing(
    svc: Services, folder: Path, clock: FrozenClock
) -> None:
    studio = Studio(replace(svc.settings, studio_git=False), svc.links)
    path = folder / "02-second.md"
    outcome = studio.save(path, edited(path, body="New.\n"), read(path).version, OPERATOR, clock())
    assert isinstance(outcome, Saved) and outcome.commit is None
    assert "New." in path.read_text()
    assert commits(folder) == 1
    assert "02-second.md" in git(folder, "status", "--porcelain")


def test_outside_a_git_repository_a_save_simply_writes(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    root = tmp_path / "plain"
    shutil.copytree(TESTS / "sequences" / "tiny", root / "tiny")
    svc = build_services(make_settings(tmp_path, sqlite_url, sequences_dir=root), clock)
    path = root / "tiny" / "02-second.md"
    outcome = Studio(svc.settings, svc.links).save(
        path, edited(path, body="New.\n"), read(path).version, OPERATOR, clock()
    )
    assert isinstance(outcome, Saved) and outcome.commit is None and outcome.git_error is None
    assert "New." in path.read_text()


def test_history_follows_a_lesson_across_a_reorder_and_restore_puts_a_version_back(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    path = folder / "02-second.md"
    original = path.read_text()
    first = studio.save(
        path, edited(path, body="Version two.\n"), read(path).version, OPERATOR, clock()
    )
    assert isinstance(first, Saved)
    moved = studio.move("tiny", "second", +1, OPERATOR, clock())
    assert isinstance(moved, Saved), moved
    path = folder / "03-second.md"
    versions = studio.history(path)
    assert [v.message for v in versions] == [
        "Reorder tiny: welcome, third, second",
        "Edit tiny/02-second.md",
        "The tiny course",
    ]
    assert "+Version two." in versions[1].diff and "-The second lesson" in versions[1].diff
    assert versions[1].email == OPERATOR and versions[1].path == "sequences/tiny/02-second.md"
    restored = studio.restore(path, versions[2].commit, read(path).version, OPERATOR, clock())
    assert isinstance(restored, Saved), restored
    assert path.read_text() == original
    assert studio.history(path)[0].message == f"Restore tiny/03-second.md as of {versions[2].short}"


def test_restore_goes_through_the_same_check_and_version_test(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    path = folder / "02-second.md"
    oldest = studio.history(path)[-1]
    stale = read(path).version
    path.write_text(edited(path, body="Someone else.\n"))
    outcome = studio.restore(path, oldest.commit, stale, OPERATOR, clock())
    assert isinstance(outcome, Conflict)
    with pytest.raises(StudioError):
        studio.restore(path, "0" * 40, read(path).version, OPERATOR, clock())


def test_a_reorder_keeps_each_reader_mid_course_at_their_place(
    svc: Services, studio: Studio, folder: Path, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    enroll(svc, "ada@example.org", first_name="Ada")
    svc.dispatcher().run_pass(clock())  # the welcome goes at once
    assert [m.subject for m in smtp_server.messages] == ["Welcome, Ada"]
    outcome = studio.reorder("tiny", ["third", "welcome", "second"], OPERATOR, clock())
    assert isinstance(outcome, Saved), outcome
    assert sorted(p.name for p in folder.glob("0*.md")) == [
        "01-third.md",
        "02-welcome.md",
        "03-second.md",
    ]
    advance_through_due_times(svc, clock)
    assert [m.subject for m in smtp_server.messages] == [
        "Welcome, Ada",
        "Lesson three",
        "Lesson two",
    ]
    top = git(folder, "show", "--stat", "--format=%s", "HEAD")
    assert "Reorder tiny: third, welcome, second" in top


def test_removing_a_lesson_keeps_the_record_of_those_who_had_it_and_sends_nothing_twice(
    svc: Services, studio: Studio, folder: Path, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    enrollment = enroll(svc, "ada@example.org", first_name="Ada")
    svc.dispatcher().run_pass(clock())
    path = folder / "01-welcome.md"
    outcome = studio.remove("tiny", "welcome", read(path).version, OPERATOR, clock())
    assert isinstance(outcome, Saved), outcome
    assert sorted(p.name for p in folder.glob("0*.md")) == ["01-second.md", "02-third.md"]
    assert "Remove lesson tiny/01-welcome.md" in git(folder, "log", "-1", "--format=%s")
    assert git(folder, "status", "--porcelain").strip() == ""
    advance_through_due_times(svc, clock)
    assert [m.subject for m in smtp_server.messages] == [
        "Welcome, Ada",
        "Lesson two",
        "Lesson three",
    ]
    with svc.sessions() as session:
        lessons = session.scalars(
            select(Delivery.lesson).where(Delivery.enrollment_id == enrollment)
        ).all()
    assert sorted(lessons) == ["second", "third", "welcome"]


def test_the_last_lesson_cannot_be_removed(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    for key in ("welcome", "second"):
        path = next(folder.glob(f"*-{key}.md"))
        assert isinstance(studio.remove("tiny", key, read(path).version, OPERATOR, clock()), Saved)
    last = folder / "01-third.md"  # renumbered as the others went
    outcome = studio.remove("tiny", "third", read(last).version, OPERATOR, clock())
    assert isinstance(outcome, Refused)
    assert any("no lessons" in p.message for p in outcome.errors)
    assert last.exists()


def test_a_new_lesson_is_named_from_its_subject_and_numbered_last(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    fields = LessonFields("Step 4: Ask for the letter — politely!", "1 week", "", "Ask early.\n")
    outcome = studio.add_lesson(
        "tiny", fields, {"step-4-ask-for-the-letter-politely"}, OPERATOR, clock()
    )
    assert isinstance(outcome, Saved), outcome
    assert outcome.path == folder / "04-step-4-ask-for-the-letter-politely-2.md"
    library = load_sequences(folder.parent)
    assert library.problems == []
    assert [lesson.key for lesson in library.sequences["tiny"].lessons][-1] == (
        "step-4-ask-for-the-letter-politely-2"
    )
    assert "Add lesson tiny/04-" in git(folder, "log", "-1", "--format=%s")


def test_a_new_lesson_without_a_body_is_refused_and_no_file_is_made(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    outcome = studio.add_lesson(
        "tiny", LessonFields("Four", "1d", "", ""), set(), OPERATOR, clock()
    )
    assert isinstance(outcome, Refused)
    assert any("no body" in p.message for p in outcome.errors)
    assert sorted(p.name for p in folder.glob("*.md")) == [
        "01-welcome.md",
        "02-second.md",
        "03-third.md",
        "magnet.md",
    ]


def test_names_from_subjects_are_lesson_names() -> None:
    assert name_for("Über-prep: Day 1", set()) == "uber-prep-day-1"
    assert name_for("!!!", set()) == "lesson"
    long = name_for("a very long subject that goes on well past forty characters", set())
    assert len(long) <= 40 and not long.endswith("-")
    assert name_for("Two", {"two", "two-2"}) == "two-3"


def test_the_settings_form_keeps_the_authors_comments(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    path = folder / "sequence.yaml"
    path.write_text(
        "# My course\n"
        + path.read_text().replace(
            "timezone: America/New_York", "timezone: America/New_York  # where I live"
        )
    )
    before = path.read_text()
    values = sequence_settings(before)
    assert values.window_start == "09:00" and values.magnet_title == "Tiny guide"
    changed = replace(values, title="Tiny course: the sequel", window_days=("mon", "wed"))
    text = settings_text(path.read_text(), changed)
    outcome = studio.save(path, text, read(path).version, OPERATOR, clock())
    assert isinstance(outcome, Saved), outcome
    saved = path.read_text()
    assert saved.startswith("# My course\n") and "# where I live" in saved
    changed_lines = set(saved.splitlines()) ^ set(before.splitlines())
    assert changed_lines == {
        'title: "Tiny course"',
        'title: "Tiny course: the sequel"',
        "  days: [mon, wed]",
    }
    sequence, problems = load_sequence(folder)
    assert problems == [] and sequence is not None
    assert sequence.title == "Tiny course: the sequel"
    assert sequence.window.days == frozenset({0, 2})


def test_settings_that_break_the_sequence_are_refused(
    studio: Studio, folder: Path, clock: FrozenClock
) -> None:
    path = folder / "sequence.yaml"
    before = path.read_bytes()
    values = sequence_settings(path.read_text())
    text = settings_text(path.read_text(), replace(values, timezone="Mars/Olympus"))
    outcome = studio.save(path, text, read(path).version, OPERATOR, clock())
    assert isinstance(outcome, Refused)
    assert any(p.path == path and "Mars/Olympus" in p.message for p in outcome.errors), outcome
    assert path.read_bytes() == before


def test_a_new_title_reaches_the_next_lesson_sent_though_its_file_did_not_change(
    svc: Services, studio: Studio, folder: Path, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    """The renderer keeps each lesson rendered; sequence.yaml's title is part of the key."""
    enroll(svc, "ada@example.org", first_name="Ada")
    svc.dispatcher().run_pass(clock())
    clock.advance(days=2, hours=1)  # into the window two days on: Ada's second lesson
    svc.dispatcher().run_pass(clock())
    assert [m.subject for m in smtp_server.messages] == ["Welcome, Ada", "Lesson two"]
    enroll(svc, "bob@example.org", first_name="Bob")
    svc.dispatcher().run_pass(clock())
    path = folder / "sequence.yaml"
    values = replace(sequence_settings(path.read_text()), title="Tiny course, renamed")
    text = settings_text(path.read_text(), values)
    assert isinstance(studio.save(path, text, read(path).version, OPERATOR, clock()), Saved)
    advance_through_due_times(svc, clock)
    [bobs_second] = [m for m in smtp_server.to("bob@example.org") if m.subject == "Lesson two"]
    assert "Tiny course, renamed" in bobs_second.html()


def test_the_preview_and_the_check_inherit_site_yaml_from_the_real_folder(
    svc: Services, studio: Studio, root: Path, folder: Path, clock: FrozenClock
) -> None:
    """The check runs on a copy of one sequence folder; what the sequences share
    (sequences/site.yaml: the author who signs every lesson) still comes with it."""
    (root / "site.yaml").write_text('author:\n  url: "https://grace.example.org"\n')
    path = folder / "02-second.md"
    preview = studio.preview(path, edited(path, body="Signed?\n"), svc.renderer, clock())
    assert "Signed?" in preview.html and "grace.example.org" in preview.html
    assert [p for p in preview.problems if p.severity == "error"] == []


def test_the_rename_plan_never_replaces_a_file_and_undoes_itself_on_a_clash(
    tmp_path: Path,
) -> None:
    for name in ("01-a.md", "02-b.md", "03-c.md"):
        (tmp_path / name).write_text(name)
    with pytest.raises(FileExistsError):
        _rename_all(tmp_path, [("01-a.md", "04-a.md"), ("02-b.md", "03-c.md")])
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "01-a.md": "01-a.md",
        "02-b.md": "02-b.md",
        "03-c.md": "03-c.md",
    }
    _rename_all(tmp_path, [("01-a.md", "02-a.md"), ("02-b.md", "01-b.md")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01-b.md", "02-a.md", "03-c.md"]
    assert (tmp_path / "02-a.md").read_text() == "01-a.md"


def test_a_broken_front_matter_is_read_key_by_key_and_written_back_without_losing_a_key() -> None:
    broken = (
        "---\n"
        "subject: Day 1: start\n"
        "delay: 2d\n"
        "preheader: 'Read me first'\n"
        "series: spring\n"
        "tags:\n"
        "  - one\n"
        "  - two\n"
        "---\n"
        "Body.\n"
    )
    fields = lesson_fields(broken)
    assert fields == LessonFields("Day 1: start", "2d", "Read me first", "Body.\n")
    written = lesson_text(broken, replace(fields, subject="Day 1: the start"))
    meta = yaml.safe_load(written.split("---\n")[1])
    assert meta == {
        "subject": "Day 1: the start",
        "delay": "2d",
        "preheader": "Read me first",
        "series": "spring",
        "tags": ["one", "two"],
    }
    assert written.endswith("---\nBody.\n")
