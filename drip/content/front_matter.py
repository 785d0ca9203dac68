"""Content files read whole, and the front matter (YAML between --- lines) that opens a
lesson, the lead magnet and a broadcast."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from drip.content.sequences import Problem
from drip.content.yaml_messages import yaml_error
from drip.core import yaml_input


class Unreadable(Exception):
    """A content file that could not be read whole, said in words for its author."""


SAVE_BY_RENAME = (
    "drip reads it again at the next pass; save by writing a new file and renaming it "
    "over the old one, as the studio does, never by rewriting it in place"
)


def read_whole(path: Path) -> str:
    """The text of a content file, read once and whole. A file that changed while it was
    read (an editor rewriting it in place: its size or time moved, fewer bytes came than
    its size) or that is not UTF-8 (cut in the middle of a character) is refused, never
    taken halfway."""
    try:
        before = os.stat(path)
        with path.open("rb") as handle:
            raw = handle.read()
            after = os.fstat(handle.fileno())
    except OSError as error:
        raise Unreadable(f"cannot be read ({error.strerror or error}); {SAVE_BY_RENAME}") from error
    moved = (before.st_ino, before.st_size, before.st_mtime_ns) != (
        after.st_ino,
        after.st_size,
        after.st_mtime_ns,
    )
    if moved or len(raw) != after.st_size:
        raise Unreadable(
            f"changed while drip read it ({len(raw)} bytes read of {before.st_size}): "
            f"it is being written; {SAVE_BY_RENAME}"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise Unreadable(
            f"line {line} is not UTF-8 text (a file cut short, or saved in another "
            "encoding): save it as UTF-8"
        ) from error


def read_or_note(path: Path, problems: list[Problem]) -> str | None:
    """`read_whole`, or None with the reason added to `problems` (`drip check`'s list)."""
    try:
        return read_whole(path)
    except Unreadable as error:
        problems.append(Problem(path, 1, f"{path.name} {error}"))
        return None


def split_front_matter(text: str) -> tuple[str, str, int] | None:
    """(front matter, body, line where the body starts), or None without front matter."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), index + 2
    return None


@dataclass(frozen=True)
class FrontMatter:
    """A content file split: the front matter's keys and values, its source, the body and
    the file line the body starts at."""

    meta: dict[str, Any]
    front: str
    body: str
    body_line: int


class FrontMatterError(ValueError):
    """Front matter that cannot be read, as a `Problem` at the line to fix."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def parse_front_matter(
    text: str, path: Path | None = None, *, missing: str = "", tolerant: bool = False
) -> FrontMatter:
    """The one reader of front matter: a lesson's, the lead magnet's, a broadcast's, a
    message template's, the studio editor's.

    A file without front matter is all body, unless `missing` says why it must have one
    (then FrontMatterError). Front matter that is not valid YAML, or not keys and values,
    raises FrontMatterError at the line to fix; with `tolerant` (an editor's form, which
    must show every field it can) it is read key by key instead (`tolerant_front`)."""
    where = path or Path("front matter")
    parts = split_front_matter(text)
    if parts is None:
        if missing:
            raise FrontMatterError(Problem(where, 1, missing))
        return FrontMatter({}, "", text, 1)
    front, body, body_line = parts
    try:
        meta = yaml_input.load(front) or {}
    except yaml.YAMLError as error:
        if tolerant:
            return FrontMatter(tolerant_front(front), front, body, body_line)
        raise FrontMatterError(yaml_error(where, error, offset=1, text=front)) from None
    if not isinstance(meta, dict):
        if tolerant:
            return FrontMatter(tolerant_front(front), front, body, body_line)
        raise FrontMatterError(Problem(where, 2, "front matter must be keys and values"))
    return FrontMatter(meta, front, body, body_line)


def front_chunks(front: str) -> list[tuple[str, str]]:
    """(key, its lines) of each top-level `key:` line of a front matter, with the indented
    lines under it."""
    chunks: list[tuple[str, list[str]]] = []
    for line in front.splitlines():
        starts = line[:1] not in ("", " ", "\t", "#", "-") and ":" in line
        if starts:
            chunks.append((line.split(":", 1)[0].strip().strip("'\""), [line]))
        elif chunks:
            chunks[-1][1].append(line)
    return [(key, "\n".join(lines)) for key, lines in chunks if key]


def tolerant_front(front: str) -> dict[str, Any]:
    """A front matter that does not parse as a whole, read one key at a time: a key whose
    lines parse has its value; one that does not (`subject: Day 1: start`) has the text
    after its colon, as the author typed it. Nothing written is dropped."""
    values: dict[str, Any] = {}
    for key, chunk in front_chunks(front):
        try:
            data = yaml_input.load(chunk)
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict) and len(data) == 1:
            values.setdefault(key, next(iter(data.values())))
        else:
            values.setdefault(key, chunk.split(":", 1)[1].strip())
    return values
