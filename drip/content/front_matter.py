"""Content files read whole, and the front matter (YAML between --- lines) that opens a
lesson, the lead magnet and a broadcast."""

from __future__ import annotations

import os
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


def split_front_matter(text: str) -> tuple[str, str, int] | None:
    """(front matter, body, line where the body starts), or None without front matter."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), index + 2
    return None


def read_front_matter(path: Path, front: str, problems: list[Problem]) -> dict[str, Any] | None:
    """The keys and values of a file's front matter (the YAML from its line 2), or None with
    the problem added to `problems` at the line to fix: a lesson's, the lead magnet's."""
    try:
        meta = yaml_input.load(front) or {}
    except yaml.YAMLError as error:
        problems.append(yaml_error(path, error, offset=1, text=front))
        return None
    if not isinstance(meta, dict):
        problems.append(Problem(path, 2, "front matter must be keys and values"))
        return None
    return meta
