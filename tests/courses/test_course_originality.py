"""The course content must be written in the project's own words.

Every lesson and lead magnet under ``sequences/`` is compared with the source blog posts in
``shared/seeds`` (a sibling of the repository checkout): no run of ``WINDOW`` consecutive words
may appear in both. Words are compared after lowercasing and dropping punctuation, template
variables (``{{ ... }}``), link targets, HTML comments and front matter keys, so a copied
sentence cannot hide behind a changed comma or a curly apostrophe.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

WINDOW = 12

REPO = Path(__file__).resolve().parents[2]
SEQUENCES = REPO / "sequences"
SEEDS = REPO.parent / "shared" / "seeds"

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_FRONT_MATTER_KEY = re.compile(r"^[ \t]*(?:-[ \t]*)?[A-Za-z_][\w-]*[ \t]*:", re.MULTILINE)
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_APOSTROPHE = re.compile(r"['’‘ʼ`]")
_WORD = re.compile(r"[^\W_]+")

Window = tuple[str, ...]


def normalise(text: str) -> list[str]:
    """Lowercase words with punctuation and apostrophes removed ("Don’t," -> "dont")."""
    return _WORD.findall(_APOSTROPHE.sub("", text.lower()))


def course_words(text: str) -> list[str]:
    """The words a reader sees: front matter values and body, without variables or markup."""
    match = _FRONT_MATTER.match(text)
    if match:
        text = _FRONT_MATTER_KEY.sub(" ", match.group(1)) + "\n" + text[match.end() :]
    text = _TEMPLATE.sub(" ", text)
    text = _HTML_COMMENT.sub(" ", text)
    text = _LINK_TARGET.sub("] ", text)
    return normalise(text)


def windows(words: list[str]) -> set[Window]:
    return {tuple(words[i : i + WINDOW]) for i in range(len(words) - WINDOW + 1)}


@cache
def seed_windows() -> frozenset[Window]:
    found: set[Window] = set()
    for seed in sorted(SEEDS.glob("*.txt")):
        found |= windows(normalise(seed.read_text(encoding="utf-8", errors="replace")))
    return frozenset(found)


def copied_runs(words: list[str], seeds: frozenset[Window]) -> list[str]:
    """Maximal runs of words in which every WINDOW-word window also occurs in the seeds."""
    runs: list[tuple[int, int]] = []
    for i in range(len(words) - WINDOW + 1):
        if tuple(words[i : i + WINDOW]) not in seeds:
            continue
        if runs and i <= runs[-1][1]:
            runs[-1] = (runs[-1][0], i + WINDOW)
        else:
            runs.append((i, i + WINDOW))
    return [" ".join(words[start:end]) for start, end in runs]


def course_files() -> list[Path]:
    return sorted(SEQUENCES.glob("*/*.md"))


def test_there_is_course_content() -> None:
    assert course_files(), f"no sequences/*/*.md files found under {SEQUENCES}"


@pytest.mark.parametrize("path", course_files(), ids=lambda p: p.relative_to(SEQUENCES).as_posix())
def test_no_run_of_words_copied_from_the_seed_articles(path: Path) -> None:
    if not SEEDS.is_dir():
        pytest.skip(f"seed articles not found at {SEEDS} (shared/ is not beside the checkout)")
    seeds = seed_windows()
    if not seeds:
        pytest.skip(f"no seed articles (*.txt) in {SEEDS}")
    runs = copied_runs(course_words(path.read_text(encoding="utf-8")), seeds)
    listed = "\n".join(f"  - {len(run.split())} words: {run!r}" for run in runs)
    assert not runs, (
        f"{path.relative_to(REPO)} copies {WINDOW}+ consecutive words from the seed articles "
        f"in {SEEDS}; rewrite these passages in your own words:\n{listed}"
    )
