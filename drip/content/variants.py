"""Experiments on a lesson: its variants and the goal they are judged on, read and checked
for `drip check`, and which variant each reader gets.

A lesson carries variants in its front matter (another subject and/or preheader) or in a
sibling file `NN-name.b.md` (another whole body):

    ---
    subject: Five ways into small talk
    delay: 2d
    goal: click
    variants:
      b:
        subject: The small-talk trick nobody teaches
    ---

The lesson itself is variant a. Each reader is assigned once, by a hash of the reader and
the lesson (so the same reader always gets the same variant, and their later lessons are
not affected), and the delivery row records it (drip.ops.experiments counts them).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from drip.content.front_matter import Unreadable, read_whole, split_front_matter
from drip.content.sequences import Goal, Lesson, Problem, Sequence, Variant

NAMES = ("b", "c")  # the alternatives; the lesson itself is "a"
VARIANT_KEYS = frozenset({"subject", "preheader"})
VARIANT_FILE = re.compile(r"^(?P<stem>\d+-[a-z0-9][a-z0-9-]*)\.(?P<name>[a-z0-9]+)\.md$")
GOAL_TAG = re.compile(r"^tag:(?P<tag>[a-z0-9][a-z0-9-]{0,39})$")  # as drip.audience.tags.TAG
GOALS = ("click", "reply", "next-lesson-kept")
GOAL_HELP = (
    "goal: is click, reply, tag:<a tag> (e.g. tag:has-dates) or next-lesson-kept; "
    "never opens, which mail apps fake"
)
EXAMPLE = "variants:\n  b:\n    subject: Another subject to try"


def read_experiment(
    meta: dict[str, Any], path: Path, version: str, lines: dict[str, int], problems: list[Problem]
) -> tuple[tuple[Variant, ...], Goal | None]:
    """The variants (front matter and sibling files) and the goal of the lesson in `path`
    (`version`: the hash of its file), each mistake added to `problems` at its line."""
    given = _front_variants(meta.get("variants"), path, lines.get("variants", 2), problems)
    files = _variant_files(path, problems)
    variants = []
    for name in NAMES:
        if name not in given and name not in files:
            continue
        fields, (body, source) = given.get(name, {}), files.get(name, (None, None))
        mine = hashlib.sha256(f"{version}/{name}/{body or ''}".encode()).hexdigest()[:12]
        variants.append(
            Variant(
                name,
                subject=fields.get("subject"),
                preheader=fields.get("preheader"),
                body=body,
                path=source,
                version=mine,
            )
        )
    if "c" in given.keys() | files.keys() and "b" not in given.keys() | files.keys():
        problems.append(Problem(path, lines.get("variants", 2), "variant c needs a variant b"))
    goal = _goal(meta.get("goal"), path, lines.get("goal", 2), problems)
    if variants and goal is None and "goal" not in meta:
        problems.append(
            Problem(
                path,
                2,
                "this lesson has variants but no goal to judge them on: add goal: click "
                "(or reply, tag:<a tag>, next-lesson-kept)",
            )
        )
    return tuple(variants), goal


def _front_variants(
    value: Any, path: Path, line: int, problems: list[Problem]
) -> dict[str, dict[str, str | None]]:
    """`variants:` of the front matter: name -> {subject, preheader} (None: the lesson's)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        problems.append(
            Problem(path, line, f"variants: names each alternative and what it changes:\n{EXAMPLE}")
        )
        return {}
    found: dict[str, dict[str, str | None]] = {}
    for name, fields in value.items():
        if str(name) not in NAMES:
            problems.append(
                Problem(path, line, f"variant {name!r}: the variants are b and c (a is the lesson)")
            )
        elif not isinstance(fields, dict) or not fields or set(fields) - VARIANT_KEYS:
            problems.append(
                Problem(
                    path,
                    line,
                    f"variant {name} changes subject and/or preheader here; another body goes "
                    f"in {path.stem}.{name}.md beside the lesson",
                )
            )
        else:
            found[str(name)] = {
                key: (str(fields[key]).strip() or None) if key in fields else None
                for key in ("subject", "preheader")
            }
    return found


def _variant_files(path: Path, problems: list[Problem]) -> dict[str, tuple[str, Path]]:
    """`NN-name.b.md` beside the lesson: name -> (its body, the file); a body only."""
    found = {}
    for name in NAMES:
        source = path.with_name(f"{path.stem}.{name}.md")
        if not source.is_file():
            continue
        try:
            text = read_whole(source)
        except Unreadable as error:
            problems.append(Problem(source, 1, f"{source.name} {error}"))
            continue
        if split_front_matter(text) is not None:
            problems.append(
                Problem(
                    source,
                    1,
                    f"{source.name} holds only the body of variant {name}: its subject or "
                    f"preheader goes under variants: {name}: in {path.name}",
                )
            )
        elif not text.strip():
            problems.append(Problem(source, 1, f"{source.name}, variant {name}'s body, is empty"))
        else:
            found[name] = (text, source)
    return found


def _goal(value: Any, path: Path, line: int, problems: list[Problem]) -> Goal | None:
    if value is None:
        return None
    text = str(value).strip()
    if text in GOALS:
        return Goal(text)
    if match := GOAL_TAG.match(text):
        return Goal("tag", match["tag"])
    if text.lower() in {"open", "opens", "opened"}:
        problems.append(Problem(path, line, f"goal: {text}: opens are not counted. {GOAL_HELP}"))
    else:
        problems.append(Problem(path, line, f"goal: {text!r} is not a goal. {GOAL_HELP}"))
    return None


def check_experiments(
    sequence: Sequence, files: list[Path], lessons: dict[str, Path]
) -> list[Problem]:
    """What only the whole course shows: a click goal without tracked links, a goal on the
    next lesson of the last one, a variant file with no lesson of its own (`files`: every
    `.md` of the folder; `lessons`: each lesson file, readable or not, by its name)."""
    problems = []
    stems = {path.stem for path in lessons.values()}
    for path in files:
        match = VARIANT_FILE.match(path.name)
        if match and (match["name"] not in NAMES or match["stem"] not in stems):
            problems.append(
                Problem(
                    path,
                    1,
                    f"{path.name} is a variant of no lesson: name it after its lesson's "
                    f"file, {match['stem']}.b.md or .c.md beside {match['stem']}.md "
                    "(renaming a lesson's file by hand, rename its variant file too)",
                )
            )
    for lesson in sequence.lessons:
        goal = lesson.goal
        if goal is not None and goal.kind == "click" and not sequence.track_links:
            problems.append(
                Problem(
                    lesson.path,
                    2,
                    "goal: click counts clicks on tracked links: add track_links: true "
                    "to sequence.yaml",
                )
            )
        if goal is not None and goal.kind == "next-lesson-kept" and lesson is sequence.lessons[-1]:
            problems.append(
                Problem(
                    lesson.path, 2, "goal: next-lesson-kept needs a next lesson; this is the last"
                )
            )
    return problems


def variant_files(folder: Path, lesson_file: str) -> list[str]:
    """The names of the variant files beside lesson file `lesson_file` (`02-x.b.md` ...)."""
    stem = Path(lesson_file).stem
    return [f"{stem}.{name}.md" for name in NAMES if (folder / f"{stem}.{name}.md").is_file()]


def following(folder: Path, renames: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The renames that keep each lesson's variant files beside it when lessons move."""
    return [
        (old_file, f"{Path(new).stem}{old_file[len(Path(old).stem) :]}")
        for old, new in renames
        for old_file in variant_files(folder, old)
    ]


def arms(lesson: Lesson) -> tuple[Lesson, ...]:
    """The lesson as each variant would send it: a (the lesson itself), b, c."""
    if not lesson.variants:
        return (lesson,)
    return (replace(lesson, variant="a"), *(_as(lesson, v) for v in lesson.variants))


def assign(subscriber_id: int, sequence: str, lesson: str, count: int) -> int:
    """Which of `count` variants a reader gets: a hash of the reader and the lesson, so it
    is the same every time it is asked and spread evenly over the readers."""
    digest = hashlib.sha256(f"{subscriber_id}/{sequence}/{lesson}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def resolve(lesson: Lesson, subscriber_id: int, sequence: str) -> Lesson:
    """The lesson as this reader gets it: their variant, named in `variant` (unchanged for
    a lesson without variants)."""
    if not lesson.variants:
        return lesson
    choices = arms(lesson)
    return choices[assign(subscriber_id, sequence, lesson.key, len(choices))]


def _as(lesson: Lesson, variant: Variant) -> Lesson:
    return replace(
        lesson,
        subject=variant.subject or lesson.subject,
        preheader=variant.preheader or lesson.preheader,
        body=variant.body if variant.body is not None else lesson.body,
        body_line=1 if variant.body is not None else lesson.body_line,
        path=variant.path or lesson.path,
        version=variant.version,
        variant=variant.name,
        variants=(),
    )
