"""Sequences as files: `sequences/<slug>/sequence.yaml` plus one `NN-name.md` per lesson.

`load_sequences()` returns every sequence it could read and a list of problems, each with the
file and line, so `drip check` can print them and the dispatcher can hold a broken sequence
instead of skipping or mangling its lessons.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from drip.content.fetch_rule import inside
from drip.content.lessons import LESSON_VARIABLES, MAGNET_VARIABLES, load_lesson
from drip.content.sequence_file import SLUG, build_sequence, load_sequence_file
from drip.content.sequences import Lesson, Library, Problem, Sequence
from drip.content.site import Site, load_site, unsigned
from drip.content.variants import VARIANT_FILE, check_experiments

LESSON_FILE = re.compile(r"^(?P<number>\d+)-(?P<key>[a-z0-9][a-z0-9-]*)\.md$")
OUTSIDE_LESSON = (
    "this lesson is a link to a file outside the course folder: "
    "drip reads only the folder's own files, so copy the lesson in"
)


@contextmanager
def folder_lock(folder: Path, *, exclusive: bool = False) -> Iterator[None]:
    """An advisory lock on a sequence folder: loading takes it shared, and the studio
    (drip.studio.editing) takes it exclusive while it renames or writes several files, so no
    process ever loads a sequence halfway through a reorder (a reader could skip a lesson)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # no folder (yet): nothing to keep consistent
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def load_sequence(folder: Path, site: Site | None = None) -> tuple[Sequence | None, list[Problem]]:
    """One sequence folder; `site` is what it inherits (site.yaml beside it when not given)."""
    with folder_lock(folder):
        return _load_sequence(folder, site)


def _load_sequence(folder: Path, site: Site | None) -> tuple[Sequence | None, list[Problem]]:
    problems: list[Problem] = []
    if site is None:
        site, _ = load_site(folder.parent)
    if not SLUG.match(folder.name):
        problems.append(
            Problem(folder, 1, "a sequence folder name is lowercase letters, digits and dashes")
        )
        return None, problems
    data = load_sequence_file(folder / "sequence.yaml", problems)
    if data is None:
        return None, problems
    sequence = build_sequence(folder, data, problems, site)
    allowed = LESSON_VARIABLES | (MAGNET_VARIABLES if sequence.lead_magnet else frozenset())
    lessons: list[Lesson] = []
    seen: dict[str, Path] = {}
    numbers: dict[int, Path] = {}
    magnet_source = sequence.lead_magnet.source if sequence.lead_magnet else None
    for path in sorted(folder.glob("*.md")):
        if path == magnet_source or path.name.lower() == "readme.md":
            continue
        if inside(path, folder) is None:
            problems.append(Problem(path, 1, OUTSIDE_LESSON))
            continue
        match = LESSON_FILE.match(path.name)
        if not match and VARIANT_FILE.match(path.name):
            continue  # a variant's body, read with its lesson (drip.content.variants)
        if not match:
            problems.append(
                Problem(path, 1, "not a lesson file name: use NN-name.md, e.g. 02-small-talk.md")
            )
            continue
        key, number = match["key"], int(match["number"])
        if key in seen:
            problems.append(
                Problem(
                    path,
                    1,
                    f"two lessons named {key!r}: this one and "
                    f"{seen[key].name}; a lesson's name must be unique",
                )
            )
            continue
        if number in numbers:
            problems.append(
                Problem(
                    path, 1, f"two lessons numbered {number}: this one and {numbers[number].name}"
                )
            )
            continue
        seen[key], numbers[number] = path, path
        lesson = load_lesson(path, match, allowed, problems)
        if lesson is not None:
            lessons.append(lesson)
    if not seen:
        problems.append(Problem(folder / "sequence.yaml", 1, "the sequence has no lessons"))
    lessons.sort(key=lambda lesson: lesson.number)
    loaded = Sequence(**{**sequence.__dict__, "lessons": tuple(lessons)})
    problems += check_experiments(loaded, sorted(folder.glob("*.md")), seen)  # variants
    return loaded, problems


def load_sequences(root: Path, author_name: str = "") -> Library:
    """Every sequence under `root`; one with an error is listed in `broken`, not `sequences`.
    `author_name` (DRIP_AUTHOR_NAME) is the author's name where no file gives one. A mistake
    in site.yaml holds every sequence, since each inherits it."""
    sequences: dict[str, Sequence] = {}
    broken: dict[str, list[Problem]] = {}
    held_forms: dict[str, Sequence] = {}
    if not root.is_dir():
        problem = Problem(root, 1, "the sequences folder does not exist (DRIP_SEQUENCES_DIR)")
        return Library({}, [problem], {})
    site, problems = load_site(root, author_name)
    site_errors = [p for p in problems if p.severity == "error"]
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (folder / "sequence.yaml").is_file():
            continue
        sequence, found = load_sequence(folder, site)
        problems.extend(found)
        errors = [*site_errors, *(p for p in found if p.severity == "error")]
        if sequence is not None and not errors:
            sequences[sequence.slug] = sequence
        else:
            broken[folder.name] = errors
            if SLUG.match(folder.name):
                held_forms[folder.name] = sequence or build_sequence(
                    folder, {"__lines__": {}}, [], site
                )
    _link_chains(sequences, problems)
    problems += unsigned(site, sequences)
    return Library(sequences, problems, broken, held_forms, site.engagement)


def no_sequences(root: Path, library: Library) -> Problem | None:
    """An error when the sequences folder is there but holds no sequence: a wrong or empty
    DRIP_SEQUENCES_DIR would otherwise read as "every sequence reads cleanly"."""
    if library.sequences or library.broken or not root.is_dir():
        return None  # a folder that does not exist is already a problem of load_sequences
    return Problem(
        root,
        1,
        f"no sequences found in {root}: each course is a folder there holding a "
        "sequence.yaml and its lessons (is DRIP_SEQUENCES_DIR the right folder?)",
    )


def _link_chains(sequences: dict[str, Sequence], problems: list[Problem]) -> None:
    """Check each `on_complete` names a sequence there is, and tell each course which
    courses enroll into it (its footer says why a reader gets it)."""
    sources: dict[str, list[str]] = {}
    for sequence in sequences.values():
        if sequence.on_complete is None:
            continue
        action, target = sequence.on_complete
        if target not in sequences or target == sequence.slug:
            problems.append(
                Problem(
                    sequence.path / "sequence.yaml",
                    1,
                    f"on_complete.{action}: there is no other sequence "
                    f"{target!r} (known: {', '.join(sorted(sequences))})",
                    "warning",
                )
            )
        elif action == "enroll":
            sources.setdefault(target, []).append(sequence.title)
    for target, titles in sources.items():
        sequences[target] = replace(sequences[target], continues_from=tuple(sorted(titles)))
