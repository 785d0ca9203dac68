"""YAML alias bombs ("billion laughs": each level of aliases multiplies the one below) and
oversized YAML are refused wherever drip reads YAML, with the file and line named for the
author: lesson front matter, sequence.yaml, site.yaml, a broadcast uploaded in the admin,
and the studio's forms that rewrite sequence.yaml keeping its comments."""

from __future__ import annotations

import html
import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from drip.app import create_app
from drip.content.loader import load_sequences
from drip.content.sequences import Problem
from drip.core.yaml_input import ALIASES, MAX_YAML_BYTES
from drip.studio.outcomes import StudioError
from drip.studio.yaml_forms import SequenceSettings, settings_text
from tests.conftest import CHEAP_HASHER, TESTS, courses_beside_tiny, make_settings
from tests.web.test_admin_access import csrf_token, logged_in_client

LEVELS = "abcdefghi"
BILLION_LAUGHS = "".join(
    ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n']
    + [
        f"{key}: &{key} [{', '.join([f'*{below}'] * 9)}]\n"
        for below, key in itertools.pairwise(LEVELS)
    ]
)  # 9**9 "lol"s once expanded; a few hundred bytes as written
TINY = TESTS / "sequences" / "tiny"


def problems_at(root: Path, path: Path) -> list[Problem]:
    return [p for p in load_sequences(root).problems if p.path == path]


@pytest.fixture
def courses(tmp_path: Path) -> Path:
    return courses_beside_tiny(tmp_path, {})


def test_aliases_in_a_lessons_front_matter_are_refused_at_their_line(courses: Path) -> None:
    lesson = courses / "tiny" / "02-second.md"
    lesson.write_text(f'---\nsubject: "Lesson two"\ndelay: 2d\n{BILLION_LAUGHS}---\nHello.\n')
    problems = problems_at(courses, lesson)
    assert [(p.line, p.message) for p in problems] == [(4, ALIASES)]
    assert str(problems[0]).startswith(f"{lesson}:4: YAML anchors and aliases (&name, *name)")


def test_a_subject_that_is_an_alias_is_refused(courses: Path) -> None:
    lesson = courses / "tiny" / "02-second.md"
    lesson.write_text('---\nsubject: &s "Lesson two"\ndelay: 2d\npreheader: *s\n---\nHello.\n')
    assert [(p.line, p.message) for p in problems_at(courses, lesson)] == [(2, ALIASES)]


def test_aliases_in_sequence_yaml_are_refused_and_the_course_is_held(courses: Path) -> None:
    path = courses / "tiny" / "sequence.yaml"
    path.write_text((TINY / "sequence.yaml").read_text() + BILLION_LAUGHS)
    lines = len((TINY / "sequence.yaml").read_text().splitlines())
    assert [(p.line, p.message) for p in problems_at(courses, path)] == [(lines + 1, ALIASES)]
    assert "tiny" in load_sequences(courses).broken


def test_aliases_in_site_yaml_are_refused(courses: Path) -> None:
    path = courses / "site.yaml"
    path.write_text('author: {name: "Ada Lovelace"}\n' + BILLION_LAUGHS)
    assert [(p.line, p.message) for p in problems_at(courses, path)] == [(2, ALIASES)]


def test_a_merge_key_is_an_alias_too(courses: Path) -> None:
    path = courses / "site.yaml"
    path.write_text('base: &base {name: "Ada"}\nauthor:\n  <<: *base\n')
    assert [p.message for p in problems_at(courses, path)] == [ALIASES]


def test_sequence_yaml_over_the_cap_is_refused_before_it_is_parsed(courses: Path) -> None:
    """The file ends in a syntax error, which a parser would report: the size is said instead."""
    path = courses / "tiny" / "sequence.yaml"
    padding = "# " + "x" * MAX_YAML_BYTES + "\n"
    path.write_text((TINY / "sequence.yaml").read_text() + padding + "broken: [never closed\n")
    (problem,) = problems_at(courses, path)
    assert problem.line == 1
    assert problem.message.startswith("the YAML is larger than 256 KB, the most drip reads")


def test_front_matter_over_the_cap_is_refused_before_it_is_parsed(courses: Path) -> None:
    lesson = courses / "tiny" / "02-second.md"
    padding = "# " + "x" * MAX_YAML_BYTES + "\n"
    lesson.write_text(f'---\nsubject: "Two"\n{padding}delay: [never closed\n---\nHello.\n')
    (problem,) = problems_at(courses, lesson)
    assert problem.message.startswith("the YAML is larger than 256 KB")


def test_the_studio_will_not_rewrite_a_sequence_yaml_holding_aliases() -> None:
    previous = (TINY / "sequence.yaml").read_text() + BILLION_LAUGHS
    with pytest.raises(StudioError, match=r"anchors and aliases \(&name, \*name\)"):
        settings_text(previous, SequenceSettings(title="New title"))


@pytest.fixture
def app(tmp_path: Path, sqlite_url: str, clock: object, courses: Path) -> Iterator[Flask]:
    application = create_app(
        make_settings(tmp_path, sqlite_url, sequences_dir=courses),
        clock=clock,  # type: ignore[arg-type]
        password_hasher=CHEAP_HASHER,
    )
    application.config["TESTING"] = True
    yield application
    application.extensions["drip"].engine.dispose()


@pytest.mark.slow
def test_a_broadcast_upload_with_aliases_is_refused_naming_the_file_and_line(
    app: Flask,
) -> None:
    web = logged_in_client(app)
    token = csrf_token(web.get("/admin/broadcasts/").text)
    text = f'---\nsubject: "News"\nto: tiny\n{BILLION_LAUGHS}---\nA new post.\n'
    answer = web.post(
        "/admin/broadcasts/",
        data={"csrf_token": token, "file": (io.BytesIO(text.encode()), "laughs.md")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 400
    assert f"laughs.md, line 4: {ALIASES}" in html.unescape(answer.text)
