"""The one front-matter reader: strict for lessons, broadcasts and templates, tolerant for the
studio editor's form."""

from __future__ import annotations

from pathlib import Path

import pytest

from drip.content.front_matter import FrontMatterError, parse_front_matter

BROKEN = "---\nsubject: Day 1: start\ndelay: 1 day\n---\nBody\n"


def test_broken_front_matter_is_a_problem_at_its_line_unless_read_tolerantly() -> None:
    with pytest.raises(FrontMatterError) as refused:
        parse_front_matter(BROKEN, Path("01-start.md"))
    assert refused.value.problem.path == Path("01-start.md")
    assert refused.value.problem.line == 2
    tolerant = parse_front_matter(BROKEN, tolerant=True)
    assert tolerant.meta == {"subject": "Day 1: start", "delay": "1 day"}
    assert (tolerant.body, tolerant.body_line) == ("Body\n", 5)


def test_a_file_without_front_matter_is_all_body_unless_it_must_have_one() -> None:
    plain = parse_front_matter("Just text\n")
    assert (plain.meta, plain.body, plain.body_line) == ({}, "Just text\n", 1)
    with pytest.raises(FrontMatterError, match="starts with front matter"):
        parse_front_matter(
            "Just text\n", Path("b.md"), missing="a broadcast starts with front matter"
        )
    with pytest.raises(FrontMatterError, match="keys and values"):
        parse_front_matter("---\n- a list\n---\nBody\n", Path("c.md"))
