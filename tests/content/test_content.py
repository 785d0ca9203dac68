"""`drip check`: every problem in a sequence is reported as `path:line: what is wrong`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drip.content.loader import load_sequences
from drip.content.sequences import Delay
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
        "tiny: 3 lessons over about 5 days, lead magnet magnet.md, double opt-in"
    )


def test_bad_yaml_is_reported_with_its_line(sequences: Path) -> None:
    path = sequences / "tiny" / "sequence.yaml"
    path.write_text(path.read_text() + "oops: [unclosed\n")
    (found,) = problems(sequences)
    assert found.startswith("tiny/sequence.yaml:14: this is not valid YAML")


@pytest.mark.parametrize(
    ("title", "line", "expected"),
    [
        (
            "title: Step 2: small talk",
            1,
            'the title has a colon (:) in it: put the title in quotes, e.g. title: "Step 2: small '
            'talk"',
        ),
        (
            "title: “Step 2: small talk”",
            1,
            "line 1 has curly quotes (“ ” or ‘ ’), as a word processor types them; YAML needs "
            "straight quotes: retype them as \" or '",
        ),
        (
            'title: "Step 2, small talk',
            1,
            "a quote opened on line 1 is never closed: end the text with the same quote mark it "
            "starts with",
        ),
    ],
)
def test_yaml_mistakes_a_non_programmer_makes_are_explained_in_plain_words(
    sequences: Path, title: str, line: int, expected: str
) -> None:
    path = sequences / "tiny" / "sequence.yaml"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([title, *lines[1:]]) + "\n")
    (found,) = problems(sequences)
    assert found == f"tiny/sequence.yaml:{line}: {expected}"


def test_a_colon_in_a_lesson_subject_is_explained_on_its_line(sequences: Path) -> None:
    (sequences / "tiny" / "02-second.md").write_text(
        "---\nsubject: Step 2: small talk\ndelay: 2d\n---\nBody.\n"
    )
    (found,) = problems(sequences)
    assert found.startswith(
        "tiny/02-second.md:2: the subject has a colon (:) in it: put the subject in quotes"
    )


def test_unknown_key_in_sequence_names_the_key_and_line(sequences: Path) -> None:
    path = sequences / "tiny" / "sequence.yaml"
    path.write_text(path.read_text().replace("double_opt_in: true", "double_optin: true"))
    (found,) = problems(sequences)
    assert found.startswith("tiny/sequence.yaml:8: unknown key 'double_optin'")


@pytest.mark.parametrize(
    ("front", "expected"),
    [
        ('subject: "Two"\ndelay: soon', "tiny/02-second.md:3: bad delay 'soon'"),
        ("delay: 2d", "tiny/02-second.md:2: missing subject"),
        ('subject: "Two"\ndelay: 2d\ncolour: red', "tiny/02-second.md:4: unknown key 'colour'"),
    ],
)
def test_lesson_front_matter_problems(sequences: Path, front: str, expected: str) -> None:
    (sequences / "tiny" / "02-second.md").write_text(f"---\n{front}\n---\nBody.\n")
    (found,) = problems(sequences)
    assert found.startswith(expected)


def test_unknown_variable_is_reported_on_its_line(sequences: Path) -> None:
    (sequences / "tiny" / "02-second.md").write_text(
        '---\nsubject: "Two"\ndelay: 2d\n---\nHello,\n\nyour score: {{ score }}\n'
    )
    assert problems(sequences) == [
        "tiny/02-second.md:7: unknown variable 'score' (known: blog_url, first_name, "
        "lead_magnet_url, preferences_url, tag_link, unsubscribe_url)"
    ]


def test_lead_magnet_variable_needs_a_lead_magnet(sequences: Path) -> None:
    path = sequences / "tiny" / "sequence.yaml"
    text = path.read_text()
    path.write_text(text[: text.index("lead_magnet:")])
    (sequences / "tiny" / "magnet.md").unlink()
    (found,) = problems(sequences)
    assert found == (
        "tiny/01-welcome.md:8: {{ lead_magnet_url }} links to the lead magnet, "
        "but this sequence has none: add lead_magnet: to sequence.yaml, or take "
        "the link out"
    )


def test_two_lessons_with_the_same_name_are_refused(sequences: Path) -> None:
    shutil.copy(sequences / "tiny" / "02-second.md", sequences / "tiny" / "04-second.md")
    assert problems(sequences) == [
        "tiny/04-second.md:1: two lessons named 'second': this one and 02-second.md; "
        "a lesson's name must be unique"
    ]


def test_broken_sequence_is_not_offered_to_the_dispatcher(sequences: Path) -> None:
    (sequences / "tiny" / "03-third.md").write_text("no front matter\n")
    library = load_sequences(sequences)
    assert "tiny" not in library.sequences
    assert [str(p).replace(f"{sequences}/", "") for p in library.broken["tiny"]] == [
        "tiny/03-third.md:1: a lesson starts with front matter between --- lines "
        "(subject, delay, optional preheader)"
    ]


@pytest.mark.parametrize(
    ("text", "days", "seconds"),
    [
        ("0", 0, 0),
        ("36h", 0, 36 * 3600),
        ("2d", 2, 0),
        ("1w", 7, 0),
        ("1d12h", 1, 12 * 3600),
        ("2 days", 2, 0),
        ("1 week", 7, 0),
        ("36 hours", 0, 36 * 3600),
        ("1 day", 1, 0),
        ("1 day 12 hours", 1, 12 * 3600),
        ("2 weeks and 3 days", 17, 0),
        ("90 minutes", 0, 5400),
    ],
)
def test_delays_parse(text: str, days: int, seconds: int) -> None:
    assert Delay.parse(text) == Delay(days, seconds)


@pytest.mark.parametrize("text", ["soon", "2 fortnights", "two days", "2 days later", "-1d"])
def test_a_delay_that_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad delay"):
        Delay.parse(text)


def test_the_four_courses_pass_check() -> None:
    library = load_sequences(TESTS.parent / "sequences")
    errors = [str(p) for p in library.problems if p.severity == "error"]
    assert errors == []
    assert sorted(library.sequences) == [
        "interview-questions",
        "networking-tips",
        "procrastination",
        "usmle-insider-kit",
    ]
