"""Variants of a lesson and their goal: read from the files, checked with a message at the
file and line, and each reader assigned one variant for good."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from drip.cli import cli
from drip.content.loader import load_sequences
from drip.content.variants import arms, assign, resolve
from tests.conftest import TESTS

SECOND = '---\nsubject: "Lesson two"\ndelay: 2d\n{front}---\nThe second lesson.\n'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences" / "tiny", root / "tiny")
    yaml = root / "tiny" / "sequence.yaml"
    yaml.write_text(yaml.read_text() + "track_links: true\n")
    return root


def write_second(root: Path, front: str) -> Path:
    path = root / "tiny" / "02-second.md"
    path.write_text(SECOND.format(front=front))
    return path


def problems(root: Path) -> list[str]:
    return [str(p).replace(f"{root}/", "") for p in load_sequences(root).problems]


def test_a_subject_variant_and_a_body_file_are_read_as_variants_b_and_c(root: Path) -> None:
    write_second(
        root, "goal: click\nvariants:\n  b:\n    subject: Another way in\n    preheader: Try it\n"
    )
    (root / "tiny" / "02-second.c.md").write_text("A whole other body, {{ first_name }}.\n")
    assert problems(root) == []
    lesson = load_sequences(root).sequences["tiny"].lessons[1]
    a, b, c = arms(lesson)
    assert (a.variant, a.subject, a.body) == ("a", "Lesson two", "The second lesson.\n")
    assert (b.variant, b.subject, b.preheader, b.body) == (
        "b",
        "Another way in",
        "Try it",
        "The second lesson.\n",
    )
    assert (c.variant, c.subject, c.body) == ("c", "Lesson two", c.body)
    assert "A whole other body" in c.body and c.path.name == "02-second.c.md"
    assert len({a.version, b.version, c.version}) == 3  # each rendered on its own
    assert str(lesson.goal) == "click"


@pytest.mark.parametrize(
    ("front", "expected"),
    [
        (
            "goal: opens\nvariants:\n  b:\n    subject: X\n",
            "tiny/02-second.md:4: goal: opens: opens are not counted.",
        ),
        (
            "variants:\n  b:\n    subject: X\n",
            "tiny/02-second.md:2: this lesson has variants but no goal",
        ),
        (
            "goal: click\nvariants:\n  d:\n    subject: X\n",
            "tiny/02-second.md:5: variant 'd': the variants are b and c",
        ),
        (
            "goal: click\nvariants:\n  b:\n    body: X\n",
            "tiny/02-second.md:5: variant b changes subject and/or preheader here; another "
            "body goes in 02-second.b.md",
        ),
        (
            "goal: click\nvariants: [X]\n",
            "tiny/02-second.md:5: variants: names each alternative",
        ),
        (
            "goal: tag:Has Dates\nvariants:\n  b:\n    subject: X\n",
            "tiny/02-second.md:4: goal: 'tag:Has Dates' is not a goal.",
        ),
        (
            "goal: click\nvariants:\n  b:\n    subject: Hi {{ nme }}\n",
            "tiny/02-second.md:5: unknown variable 'nme'",
        ),
    ],
)
def test_check_says_what_is_wrong_with_a_variant_and_where(
    root: Path, front: str, expected: str
) -> None:
    write_second(root, front)
    found = problems(root)
    assert any(p.startswith(expected) for p in found), found


def test_a_click_goal_needs_tracked_links(root: Path) -> None:
    yaml = root / "tiny" / "sequence.yaml"
    yaml.write_text(yaml.read_text().replace("track_links: true\n", ""))
    write_second(root, "goal: click\nvariants:\n  b:\n    subject: X\n")
    assert problems(root) == [
        "tiny/02-second.md:2: goal: click counts clicks on tracked links: add "
        "track_links: true to sequence.yaml"
    ]


def test_a_variant_file_of_no_lesson_and_one_with_front_matter_are_reported(root: Path) -> None:
    (root / "tiny" / "07-gone.b.md").write_text("Body.\n")
    (root / "tiny" / "03-third.b.md").write_text("---\nsubject: X\n---\nBody.\n")
    found = problems(root)
    assert any(
        p.startswith("tiny/07-gone.b.md:1: 07-gone.b.md is a variant of no lesson") for p in found
    )
    assert any(
        p.startswith("tiny/03-third.b.md:1: 03-third.b.md holds only the body of variant b")
        for p in found
    )


def test_next_lesson_kept_on_the_last_lesson_is_refused(root: Path) -> None:
    path = root / "tiny" / "03-third.md"
    text = path.read_text()
    path.write_text(text.replace("---\n", "---\ngoal: next-lesson-kept\n", 1))
    assert any("goal: next-lesson-kept needs a next lesson" in p for p in problems(root))


def test_a_lesson_without_variants_is_sent_as_it_is(root: Path) -> None:
    lesson = load_sequences(root).sequences["tiny"].lessons[0]
    assert resolve(lesson, 7, "tiny") is lesson
    assert lesson.variant == ""


@settings(max_examples=200, deadline=None)
@given(reader=st.integers(min_value=1, max_value=2**31), lesson=st.text(min_size=1, max_size=30))
def test_the_same_reader_and_lesson_always_get_the_same_variant(reader: int, lesson: str) -> None:
    first = assign(reader, "tiny", lesson, 3)
    assert all(assign(reader, "tiny", lesson, 3) == first for _ in range(3))
    assert 0 <= first < 3


@settings(max_examples=25, deadline=None)
@given(start=st.integers(min_value=1, max_value=2**30), lesson=st.text(min_size=1, max_size=20))
def test_variants_are_spread_evenly_over_readers(start: int, lesson: str) -> None:
    """Over 3,000 consecutive readers each of two variants gets 50% +- 4 points, each of
    three 33% +- 4 (a fair coin leaves 4 points about one time in 10^5)."""
    two = sum(assign(r, "tiny", lesson, 2) for r in range(start, start + 3000))
    assert abs(two / 3000 - 0.5) < 0.04
    three = [0, 0, 0]
    for r in range(start, start + 3000):
        three[assign(r, "tiny", lesson, 3)] += 1
    assert all(abs(n / 3000 - 1 / 3) < 0.04 for n in three)


def test_a_readers_variant_of_one_lesson_does_not_decide_the_next(root: Path) -> None:
    """Assignment hashes the lesson too: the readers who got b of one lesson are split
    again on the next."""
    b_first = [r for r in range(1, 2001) if assign(r, "tiny", "second", 2) == 1]
    b_again = sum(assign(r, "tiny", "third", 2) for r in b_first)
    assert abs(b_again / len(b_first) - 0.5) < 0.06


def test_drip_check_renders_each_variant_and_reports_it_at_its_own_file(
    root: Path, tmp_path: Path
) -> None:
    """A variant body that cannot be sent (an <mj-include>) fails `drip check` at its file,
    as the lesson's own body would."""
    write_second(root, "goal: click\n")
    (root / "tiny" / "02-second.b.md").write_text('Hi.\n\n<mj-include path="/etc/passwd" />\n')
    result = CliRunner().invoke(
        cli,
        ["check"],
        env={"DRIP_SEQUENCES_DIR": str(root), "DRIP_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.exit_code != 0
    assert "02-second.b.md:3:" in result.output, result.output


def test_drip_preview_writes_each_variant_beside_the_lesson(root: Path, tmp_path: Path) -> None:
    write_second(root, "goal: click\nvariants:\n  b:\n    subject: Another way in\n")
    out = tmp_path / "previews"
    result = CliRunner().invoke(
        cli,
        ["preview", "tiny", "second", "--out", str(out)],
        env={"DRIP_SEQUENCES_DIR": str(root), "DRIP_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.exit_code == 0, result.output
    assert (out / "tiny" / "02-second.txt").read_text().startswith("Subject: Lesson two\n")
    assert (out / "tiny" / "02-second.b.txt").read_text().startswith("Subject: Another way in\n")


def test_an_unknown_variable_in_a_variant_file_is_reported_at_its_line(root: Path) -> None:
    write_second(root, "goal: click\n")
    (root / "tiny" / "02-second.b.md").write_text("Hello.\n\nBye {{ nmae }}.\n")
    found = problems(root)
    assert any(p.startswith("tiny/02-second.b.md:3: unknown variable 'nmae'") for p in found)
