"""The git repository the sequences folder may live in: each change the studio makes is a
commit with the operator as its author, and a lesson's history is `git log --follow`.

It runs the `git` command (no library): what the author sees in `git log` on their own
machine is exactly what drip wrote. Nothing here raises for a folder outside a repository;
`repository()` answers None and the studio simply does not commit.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from drip.ops.operators import plain_address

RECORD = "\x1e"  # between two commits of `git log`
FIELD = "\x1f"  # between the fields of one commit
LOG_FORMAT = f"{RECORD}%H{FIELD}%an{FIELD}%ae{FIELD}%aI{FIELD}%s{FIELD}"
DIFF_PATHS = re.compile(r"^diff --git a/(?P<old>\S+) b/(?P<new>\S+)$", re.M)
COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


class GitError(Exception):
    """git refused or failed (the message is what git said), or was not run because the
    author is not an address alone."""


@dataclass(frozen=True)
class Version:
    """One commit that changed a file: who, when, why, and the diff it made."""

    commit: str
    author: str
    email: str
    date: str  # ISO 8601, as git gives it
    message: str
    path: str  # the file's path in the repository at that commit (reorders rename it)
    diff: str

    @property
    def short(self) -> str:
        return self.commit[:10]


def _git(top: Path, *args: str, check: bool = True) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(top), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GitError(f"git could not run: {error}") from error
    if check and result.returncode != 0:
        raise GitError((result.stderr or result.stdout).strip() or f"git {args[0]} failed")
    return result.stdout


def repository(folder: Path) -> Path | None:
    """The top of the git work tree holding `folder`, or None when it is in none."""
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    top = result.stdout.strip()
    return Path(top) if result.returncode == 0 and top else None


def _relative(top: Path, path: Path) -> str:
    return path.resolve().relative_to(top.resolve()).as_posix()


def commit(top: Path, paths: list[Path], message: str, author: str) -> str | None:
    """Commit exactly `paths` (written, created, renamed or deleted) with `author` (the
    operator's address) as author and committer; the new commit's id, or None when the
    files were already as committed. Other changes in the work tree are left alone.
    The identity is the address alone, checked here too: text such as `Ada <a@x> b@y`
    (an account from before addresses were checked) would make git record someone else."""
    if not plain_address(author):
        raise GitError(f"{author[:100]!r} is not a plain email address, so it is not an author")
    names = sorted({_relative(top, path) for path in paths})
    _git(top, "add", "--all", "--", *names)
    if not _git(top, "status", "--porcelain", "--", *names).strip():
        return None
    identity = ["-c", f"user.name={author}", "-c", f"user.email={author}"]
    _git(
        top,
        *identity,
        "commit",
        "--quiet",
        f"--author={author} <{author}>",
        "--message",
        message,
        "--",
        *names,
    )
    return _git(top, "rev-parse", "HEAD").strip()


def history(top: Path, path: Path, limit: int = 50) -> list[Version]:
    """The commits that changed `path`, newest first, across renames (`--follow`)."""
    output = _git(
        top,
        "log",
        "--follow",
        f"--max-count={limit}",
        f"--format={LOG_FORMAT}",
        "--patch",
        "--find-renames",
        "--",
        _relative(top, path),
        check=False,
    )
    versions = []
    for record in output.split(RECORD)[1:]:
        fields = record.split(FIELD, 5)
        if len(fields) < 6:
            continue
        sha, name, email, date, subject, diff = fields
        paths = DIFF_PATHS.search(diff)
        at = paths["new"] if paths else _relative(top, path)
        versions.append(Version(sha, name, email, date, subject, at, diff.strip("\n")))
    return versions


def show(top: Path, commit_id: str, path: str) -> bytes:
    """The bytes of `path` as it was at `commit_id`."""
    if not COMMIT.match(commit_id) or path.startswith("-"):
        raise GitError(f"not a commit id: {commit_id!r}")
    try:
        result = subprocess.run(
            ["git", "-C", str(top), "show", f"{commit_id}:{path}"],
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GitError(f"git could not run: {error}") from error
    if result.returncode != 0:
        raise GitError(result.stderr.decode("utf-8", "replace").strip())
    return result.stdout
