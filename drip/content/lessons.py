"""One lesson file (`NN-name.md`): its front matter, its body and the `{{ variables }}` it
may use, each problem at its line."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from drip.content.front_matter import FrontMatterError, parse_front_matter, read_or_note
from drip.content.sequences import Delay, Lesson, Problem
from drip.content.variants import read_experiment
from drip.content.yaml_messages import line_of_keys

VARIABLE = re.compile(
    r"\{\{\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?:\|\s*default\(\s*\"(?P<default>[^\"{}]*)\"\s*\)\s*"
    r"|\(\s*\"(?P<arg>[^\"{}]*)\"\s*\)\s*)?\}\}"
)
TAG_LINK = "tag_link"  # {{ tag_link("has-dates") }}: a link that tags the reader who opens it
EXIT_TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")  # as drip.audience.tags.TAG
MARKDOWN_EXTENSIONS = ["extra", "sane_lists", "smarty"]  # the Markdown a lesson is written in
BLOG_URL = "blog_url"  # the author's blog (author.url); a paragraph holding it needs one
LESSON_VARIABLES = frozenset(
    {"first_name", "unsubscribe_url", "preferences_url", TAG_LINK, BLOG_URL}
)
MAGNET_VARIABLES = frozenset({"lead_magnet_url"})
LESSON_KEYS = frozenset({"subject", "delay", "preheader", "variants", "goal"})

LESSON_FRONT_MATTER = (
    "a lesson starts with front matter between --- lines (subject, delay, optional preheader)"
)


def load_lesson(
    path: Path, match: re.Match[str], allowed: frozenset[str], problems: list[Problem]
) -> Lesson | None:
    """The lesson in `path`, or None with every problem it has added to `problems`."""
    read = _read_lesson(path, problems)
    if read is None:
        return None
    text, front, body, body_line, meta = read
    lines = {k: v + 1 for k, v in line_of_keys(front).items()}
    before = len(problems)
    subject, delay, preheader = _lesson_fields(meta, path, lines, problems)
    for chunk, first_line in (
        (subject, lines.get("subject", 2)),
        (preheader, lines.get("preheader", 2)),
        (body, body_line),
    ):
        problems.extend(check_variables(chunk, allowed, path, first_line))
    if not body.strip():
        problems.append(Problem(path, body_line, "the lesson has no body"))
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    variants, goal = read_experiment(meta, path, version, lines, problems)
    lesson = Lesson(
        key=match["key"],
        number=int(match["number"]),
        path=path,
        subject=subject,
        delay=delay,
        preheader=preheader,
        body=body,
        body_line=body_line,
        version=version,
        variants=variants,
        goal=goal,
    )
    for variant in variants:  # each variant's own text: its variables, at its line
        where = lines.get("variants", 2)
        for chunk, first_line, at in (
            (variant.subject or "", where, path),
            (variant.preheader or "", where, path),
            (variant.body or "", 1, variant.path or path),
        ):
            problems.extend(check_variables(chunk, allowed, at, first_line))
    return None if len(problems) > before else lesson


def _read_lesson(
    path: Path, problems: list[Problem]
) -> tuple[str, str, str, int, dict[str, Any]] | None:
    """(whole text, front matter, body, body's first line, front matter's keys), or None."""
    text = read_or_note(path, problems)
    if text is None:
        return None
    try:
        parsed = parse_front_matter(text, path, missing=LESSON_FRONT_MATTER)
    except FrontMatterError as error:
        problems.append(error.problem)
        return None
    return text, parsed.front, parsed.body, parsed.body_line, parsed.meta


def _lesson_fields(
    meta: dict[str, Any], path: Path, lines: dict[str, int], problems: list[Problem]
) -> tuple[str, Delay, str]:
    """Subject, delay and preheader from the front matter, each mistake at its line."""
    for key in meta:
        if key not in LESSON_KEYS:
            problems.append(
                Problem(
                    path,
                    lines.get(key, 2),
                    f"unknown key {key!r} (allowed: subject, delay, preheader, goal, variants)",
                )
            )
    subject = str(meta.get("subject") or "").strip()
    if not subject:
        problems.append(Problem(path, lines.get("subject", 2), "missing subject"))
    delay = Delay()
    if "delay" not in meta:
        problems.append(Problem(path, 2, "missing delay (0, 36h, 2d, 1w ...)"))
    else:
        try:
            delay = Delay.parse(str(meta["delay"]))
        except ValueError as error:
            problems.append(Problem(path, lines.get("delay", 2), str(error)))
    return subject, delay, str(meta.get("preheader") or "").strip()


def check_variables(
    text: str, allowed: frozenset[str], path: Path, first_line: int
) -> list[Problem]:
    """Unknown or malformed `{{ ... }}` in a lesson, each with its line."""
    problems = []
    for offset, line in enumerate(text.splitlines()):
        known = {m.start(): m for m in VARIABLE.finditer(line)}
        for start in (m.start() for m in re.finditer(r"\{\{", line)):
            found = known.get(start)
            if found is None:
                problems.append(
                    Problem(
                        path,
                        first_line + offset,
                        'malformed variable: write {{ name }} or {{ name|default("text") }}',
                    )
                )
            elif (
                found["name"] == TAG_LINK
                and found["name"] in allowed
                and (found["arg"] is None or not EXIT_TAG.match(found["arg"]))
            ):
                problems.append(
                    Problem(
                        path,
                        first_line + offset,
                        'tag_link names its tag: {{ tag_link("has-dates") }}, '
                        "up to 40 lowercase letters, digits and dashes",
                    )
                )
            elif found["arg"] is not None and found["name"] != TAG_LINK:
                problems.append(
                    Problem(
                        path,
                        first_line + offset,
                        f"{found['name']} takes no argument; only tag_link "
                        'does: {{ tag_link("has-dates") }}',
                    )
                )
            elif found["name"] in MAGNET_VARIABLES and found["name"] not in allowed:
                problems.append(
                    Problem(
                        path,
                        first_line + offset,
                        f"{{{{ {found['name']} }}}} links to the lead magnet, "
                        "but this sequence has none: add lead_magnet: to "
                        "sequence.yaml, or take the link out",
                    )
                )
            elif found["name"] not in allowed:
                problems.append(
                    Problem(
                        path,
                        first_line + offset,
                        f"unknown variable {found['name']!r} (known: {', '.join(sorted(allowed))})",
                    )
                )
    return problems
