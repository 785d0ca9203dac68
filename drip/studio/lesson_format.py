"""The lesson file format: front matter read (leniently, key by key when a text editor broke it)
and written back with the author's comments kept, lesson files by name, problems placed
beside the form's fields.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError as RoundTripError

from drip.content.fetch_rule import inside
from drip.content.front_matter import (
    FrontMatterError,
    front_chunks,
    parse_front_matter,
    split_front_matter,
)
from drip.content.loader import LESSON_FILE
from drip.content.sequences import Problem
from drip.core import yaml_input
from drip.studio.yaml_forms import quoted, round_trip

MAGNET_FILE = "magnet.md"
MAGNET_KEYS = ("title", "subtitle", "credential", "notice")
FORM_KEYS = ("subject", "delay", "preheader", *MAGNET_KEYS)


@dataclass(frozen=True)
class LessonFile:
    number: int
    key: str
    path: Path


def lesson_files(folder: Path) -> list[LessonFile]:
    """The lesson files of a sequence folder in order, read from their names alone (a lesson
    whose text is broken is still listed, so it can be opened and fixed; a link out of the
    folder is not, so the editor never shows another file of the server)."""
    found = []
    for path in folder.glob("*.md"):
        match = LESSON_FILE.match(path.name)
        if match and path.name != MAGNET_FILE and inside(path, folder) is not None:
            found.append(LessonFile(int(match["number"]), match["key"], path))
    return sorted(found, key=lambda item: (item.number, item.key))


def lesson_file(folder: Path, key: str) -> LessonFile | None:
    return next((item for item in lesson_files(folder) if item.key == key), None)


@dataclass(frozen=True)
class LessonFields:
    """What the lesson editor's form holds."""

    subject: str
    delay: str
    preheader: str
    body: str


def _front(text: str) -> tuple[dict[str, Any], str, str]:
    """(front matter as read leniently, its source, the body) of a Markdown file. Front
    matter a text editor broke is read key by key (tolerant_front), so the form shows every
    field that can be read."""
    parsed = parse_front_matter(text, tolerant=True)
    return parsed.meta, parsed.front, parsed.body


def front_matter_broken(text: str) -> bool:
    """True when a file's front matter is there but does not read as keys and values."""
    if split_front_matter(text) is None:
        return text.lstrip().startswith("---")
    try:
        parse_front_matter(text)
    except FrontMatterError:
        return True
    return False


def front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(front matter as read leniently, body): what an editor's form starts from."""
    meta, _, body = _front(text)
    return meta, body


def lesson_fields(text: str) -> LessonFields:
    meta, body = front_matter(text)
    return LessonFields(
        subject=str(meta.get("subject") or ""),
        delay=str(meta.get("delay", "")),
        preheader=str(meta.get("preheader") or ""),
        body=body,
    )


def with_front_matter(previous: str, values: Mapping[str, str | None], body: str) -> str:
    """A Markdown file with `values` set in its front matter and `body` under it. The
    previous front matter's comments and key order are kept (ruamel.yaml round trip);
    a value of None or "" removes its key. A front matter that does not parse keeps every
    key tolerant_front reads (the form may not show them all)."""
    _, front, _ = _front(previous)
    handler = round_trip()
    try:
        data = yaml_input.load_round_trip(handler, front) if front.strip() else None
    except (RoundTripError, yaml.YAMLError):
        data = None
    if not isinstance(data, CommentedMap):
        data = _tolerant_round_trip(handler, front)
    for key, value in values.items():
        if value is None or not value.strip():
            data.pop(key, None)
        elif key not in data or str(data[key]) != value.strip():  # unchanged: kept as written
            data[key] = quoted(value.strip())
    out = io.StringIO()
    handler.dump(data, out)
    return f"---\n{out.getvalue()}---\n{_clean_body(body)}"


def _tolerant_round_trip(handler: YAML, front: str) -> CommentedMap:
    """A broken front matter as a map to write back: each key whose lines parse kept as
    written, each that does not as the quoted text after its colon (tolerant_front)."""
    data = CommentedMap()
    for key, chunk in front_chunks(front):
        try:
            one = yaml_input.load_round_trip(handler, chunk)
        except (RoundTripError, yaml.YAMLError):
            one = None
        if key in data:
            continue
        if isinstance(one, CommentedMap) and len(one) == 1:
            data[key] = next(iter(one.values()))
        else:
            data[key] = quoted(chunk.split(":", 1)[1].strip())
    return data


def _clean_body(body: str) -> str:
    """A browser sends CRLF line ends; the file keeps LF, and ends with one newline."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    return text.rstrip("\n") + "\n" if text.strip() else ""


def lesson_text(previous: str, fields: LessonFields) -> str:
    """The file a lesson form makes: `previous` is the file as it is (or "" for a new one)."""
    return with_front_matter(
        previous,
        {"subject": fields.subject, "delay": fields.delay, "preheader": fields.preheader},
        fields.body,
    )


def body_line(text: str) -> int:
    """The line of the file where the Markdown body starts (1 without front matter)."""
    parts = split_front_matter(text)
    return parts[2] if parts else 1


def front_matter_lines(text: str) -> dict[str, int]:
    """The file line of each front matter key, to show a problem beside its field."""
    parts = split_front_matter(text)
    if parts is None:
        return {}
    lines: dict[str, int] = {}
    for number, line in enumerate(parts[0].splitlines(), start=2):
        key = line.split(":", 1)[0].strip()
        if ":" in line and key and not line[:1].isspace():
            lines.setdefault(key, number)
    return lines


def file_name(number: int, key: str, count: int) -> str:
    return f"{number:0{max(2, len(str(count)))}d}-{key}.md"


@dataclass(frozen=True)
class Placed:
    """A problem placed where the editor shows it: beside a front matter field, or at a line
    of the body as the textarea numbers it, or (another file's) in the list under the form."""

    problem: Problem
    field: str  # "subject", "delay", "preheader", "body", or "" (elsewhere)
    line: int  # the textarea's line for "body"; the file's line otherwise

    @property
    def where(self) -> str:
        if self.field == "body":
            return f"line {self.line}"
        if self.field:
            return self.field
        return f"{self.problem.path.name}, line {self.problem.line}"


def place(problems: list[Problem], path: Path, text: str) -> list[Placed]:
    """Each problem of `path` (whose text is `text`) at its field or body line."""
    start = body_line(text)
    keys = {line: key for key, line in front_matter_lines(text).items()}
    placed = []
    for problem in problems:
        if problem.path != path:
            placed.append(Placed(problem, "", problem.line))
        elif problem.line >= start and split_front_matter(text) is not None:
            placed.append(Placed(problem, "body", problem.line - start + 1))
        else:
            named = next(
                (k for k in FORM_KEYS if problem.message.startswith((f"missing {k}", f"bad {k}"))),
                None,
            )
            placed.append(Placed(problem, named or keys.get(problem.line, ""), problem.line))
    return placed


def diff(disk: str, yours: str) -> str:
    """The change from the file on disk to the editor's text, as a unified diff."""
    return "\n".join(
        difflib.unified_diff(disk.splitlines(), yours.splitlines(), "on disk", "yours", lineterm="")
    )
