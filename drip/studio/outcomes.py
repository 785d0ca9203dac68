"""What a change in the studio comes to (saved, refused, a conflict), and the files as the editor
read them: each carries a version token, the hash of its bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from drip.content.sequences import Problem


def version_of(data: bytes) -> str:
    """The version token of a file: a hash of its bytes, whatever its mtime."""
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class Document:
    """A course file as the editor read it."""

    path: Path
    text: str
    version: str


def read(path: Path) -> Document:
    data = path.read_bytes()
    return Document(path, data.decode("utf-8", errors="replace"), version_of(data))


# -- outcomes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Saved:
    """The change is on disk; `commit` is its git commit (None without git, or when git
    failed: `git_error` says why, the files are saved all the same)."""

    path: Path | None
    version: str
    warnings: list[Problem] = field(default_factory=list)
    commit: str | None = None
    git_error: str | None = None
    before: str = ""  # the text the change replaced (for the audit log)
    after: str = ""


@dataclass(frozen=True)
class Refused:
    """The change would break the sequence; nothing was written. Problems carry the real
    paths and lines, errors first."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


@dataclass(frozen=True)
class Conflict:
    """The file changed on disk since the editor opened it; nothing was written."""

    disk: Document | None  # None: the file is gone
    yours: str


Outcome = Saved | Refused | Conflict


class StudioError(Exception):
    """A request the studio cannot carry out (no such lesson, a bad move); the message says
    what to do."""
