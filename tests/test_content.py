"""`drip check`: every problem in a sequence is reported as `path:line: what is wrong`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drip.content import Delay, load_sequences
from tests.conftest import TESTS


@pytest.fixture
def sequences(tmp_path: Path) -> Path:
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences" / "tiny", root / "tiny")
    return root


def problems(root: Path) -> list[str]:
    return [str(p).replace(f"{root}/", "") for p in load_sequences(root).problems]


def test_correct_sequence_has_no_problems(sequences: Path) -> None:
    library = load_sequences(sequences)
    assert problems(sequences) == []
    tiny = library.sequences["tiny"]
    assert [lesson.key for lesson in tiny.lessons] == ["welcome", "second", "third"]
    assert tiny.summary() == (
        "tiny: 3 lessons over about 5 days, lead magnet magnet.md, double opt-in")


def test_bad_yaml_is_reported_with_its_line(sequences: Path) -> None:
    path = sequences / "tiny" / "sequence.yaml"
    path.write_text(path.read_text() + "oops: [unclosed\n")
    (found,) = problems(sequences)
    assert found.startswith("tiny/sequence.yaml:13: bad YAML")


def test_unknown_key_in_sequence_names_the_key_and_line(sequences: Path) -> None:
    path = sequences / "tiny" / "sequence.yaml"
    path.write_text(path.read_text().replace("double_opt_in: true", "double_optin: true"))
    (found,) = problems(sequences)
    assert found.startswith("tiny/sequence.yaml:8: unknown key 'double_optin'")


@pytest.mark.parametrize(("front", "expected"), [
    ('subject: "Two"\ndelay: 2 days', "tiny/02-second.md:3: bad delay '2 days'"),
    ("delay: 2d", "tiny/02-second.md:2: missing subject"),
    ('subject: "Two"\ndelay: 2d\ncolour: red', "tiny/02-second.md:4: unknown key 'colour'"),
])
def test_lesson_front_matter_problems(sequences: Path, front: str, expected: str) -> None:
    (sequences / "tiny" / "02-second.md").write_text(f"---\n{front}\n---\nBody.\n")
    (found,) = problems(sequences)
    assert found.startswith(expected)


def test_unknown_variable_is_reported_on_its_line(sequences: Path) -> None:
    (sequences / "tiny" / "02-second.md").write_text(
        '---\nsubject: "Two"\ndelay: 2d\n---\nHello,\n\nyour score: {{ score }}\n')
    assert problems(sequences) == [
        "tiny/02-second.md:7: unknown variable 'score' (known: first_name, lead_magnet_url, "
        "preferences_url, unsubscribe_url)"]


def test_lead_magnet_variable_needs_a_lead_magnet(sequences: Path) -> None:
    path = sequences / "tiny" / "sequence.yaml"
    text = path.read_text()
    path.write_text(text[:text.index("lead_magnet:")])
    (sequences / "tiny" / "magnet.md").unlink()
    (found,) = problems(sequences)
    assert found.startswith("tiny/01-welcome.md:8: unknown variable 'lead_magnet_url'")


def test_two_lessons_with_the_same_name_are_refused(sequences: Path) -> None:
    shutil.copy(sequences / "tiny" / "02-second.md", sequences / "tiny" / "04-second.md")
    assert problems(sequences) == [
        "tiny/04-second.md:1: two lessons named 'second': this one and 02-second.md; "
        "a lesson's name must be unique"]


def test_broken_sequence_is_not_offered_to_the_dispatcher(sequences: Path) -> None:
    (sequences / "tiny" / "03-third.md").write_text("no front matter\n")
    library = load_sequences(sequences)
    assert "tiny" not in library.sequences
    assert [str(p).replace(f"{sequences}/", "") for p in library.broken["tiny"]] == [
        "tiny/03-third.md:1: a lesson starts with front matter between --- lines "
        "(subject, delay, optional preheader)"]


@pytest.mark.parametrize(("text", "days", "seconds"), [
    ("0", 0, 0), ("36h", 0, 36 * 3600), ("2d", 2, 0), ("1w", 7, 0), ("1d12h", 1, 12 * 3600),
])
def test_delays_parse(text: str, days: int, seconds: int) -> None:
    assert Delay.parse(text) == Delay(days, seconds)


def test_the_four_courses_pass_check() -> None:
    library = load_sequences(TESTS.parent / "sequences")
    errors = [str(p) for p in library.problems if p.severity == "error"]
    assert errors == []
    assert sorted(library.sequences) == [
        "interview-questions", "networking-tips", "procrastination", "usmle-insider-kit"]
