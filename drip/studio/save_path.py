"""The save path every studio change goes: the folder as it will be, written to a temporary
copy and checked as `drip check` does; the files still as checked, written atomically under
the folder's lock; then a git commit by the operator (drip.studio.course_git).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from drip.content.fetch_rule import standing_in
from drip.content.loader import folder_lock, load_sequence
from drip.content.magnets import cache_dir
from drip.content.sequences import Library, Problem, Sequence
from drip.content.site import SITE_FILE, Site, load_site
from drip.core.config import Settings
from drip.mail.links import Links
from drip.mail.render import Renderer
from drip.studio import course_git
from drip.studio.lint import lint, render_problems
from drip.studio.outcomes import Conflict, Refused, Saved, StudioError, read

SEQUENCE_FILE = "sequence.yaml"
CHECKED_SUFFIXES = (".md", ".yaml", ".yml")  # read into the candidate; anything else is linked


# -- the check ---------------------------------------------------------------------------------


Changes = Mapping[str, bytes | None]  # file name in the folder -> new bytes, or None: removed


def folder_files(folder: Path) -> dict[str, bytes]:
    """The bytes of every file of the folder the check reads."""
    return {
        path.name: path.read_bytes()
        for path in folder.iterdir()
        if path.is_file() and path.suffix in CHECKED_SUFFIXES and not path.name.startswith(".")
    }


@dataclass(frozen=True)
class Checked:
    sequence: Sequence | None  # the candidate, loaded from its temporary copy
    problems: list[Problem]  # with the real folder's paths

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


class CourseFolder:
    """One sequences folder, checked and written for an operator: what every studio change
    goes through (drip.studio.editing.Studio builds its operations on it)."""

    def __init__(self, settings: Settings, links: Links, git: bool | None = None) -> None:
        self.settings = settings
        self.root = settings.sequences_dir
        self.links = links
        self.git = settings.studio_git if git is None else git

    # -- paths

    def _site(self) -> Site:
        """What every sequence inherits (site.yaml beside them), read from the real folder:
        the check's copy of one sequence has no site.yaml beside it."""
        site, _ = load_site(self.root, self.settings.author_name)
        return site

    def folder(self, slug: str) -> Path:
        folder = self.root / slug
        if "/" in slug or slug.startswith(".") or not (folder / SEQUENCE_FILE).is_file():
            raise StudioError(f"there is no sequence {slug!r} in {self.root}")
        return folder

    # -- checking

    @contextmanager
    def _candidate(self, folder: Path, files: Mapping[str, bytes]) -> Iterator[Path]:
        """A temporary copy of `folder` holding `files`; everything else (images beside
        the lessons, sub-folders) linked, so lint finds what the lessons point at."""
        with tempfile.TemporaryDirectory(prefix="drip-studio-") as scratch:
            copy = Path(scratch) / "sequences" / folder.name
            copy.mkdir(parents=True)
            for entry in folder.iterdir():
                checked = entry.suffix in CHECKED_SUFFIXES and entry.is_file()
                if entry.name not in files and not entry.name.startswith(".") and not checked:
                    os.symlink(entry.resolve(), copy / entry.name)
            for name, data in files.items():
                (copy / name).write_bytes(data)
            yield copy

    def check_files(
        self,
        folder: Path,
        files: Mapping[str, bytes],
        now: datetime,
        *,
        typeset: bool = True,
        site: Site | None = None,
    ) -> Checked:
        """What `drip check` says of the sequence made of `files`: loading, building every
        message it sends for a sample reader (the lead-magnet PDF too, unless `typeset` is
        False: a preview leaves the slow part to the save), the lint warnings. `site`: what
        it inherits, if not the site.yaml on disk."""
        with self._candidate(folder, files) as copy, standing_in(copy, folder):
            sequence, problems = load_sequence(copy, site or self._site())
            errors = [p for p in problems if p.severity == "error"]
            if sequence is not None and not errors:
                settings = replace(self.settings, data_dir=copy.parent.parent / "data")
                self._reuse_magnet_cache(folder.name, settings)
                renderer = Renderer(settings)
                library = Library({sequence.slug: sequence}, [], {})
                problems += render_problems(
                    library, renderer, self.links, settings, now, typeset=typeset
                )
                if not any(p.severity == "error" for p in problems):
                    problems += lint(library, renderer)
            mapped = [self._real(problem, copy, folder) for problem in problems]
        mapped.sort(key=lambda p: (p.severity != "error", p.path.name, p.line))
        return Checked(sequence, mapped)

    def _reuse_magnet_cache(self, slug: str, settings: Settings) -> None:
        """Copy the built lead-magnet PDF into the check's own data folder: when the magnet
        is unchanged it is current there and not typeset again; the real cache is never
        written by a check (readers download from it)."""
        source, target = cache_dir(self.settings), cache_dir(settings)
        if not source.is_dir():
            return
        target.mkdir(parents=True, exist_ok=True)
        for path in source.glob(f"{slug}.*"):
            shutil.copy2(path, target / path.name)

    @staticmethod
    def _real(problem: Problem, copy: Path, folder: Path) -> Problem:
        try:
            relative = problem.path.relative_to(copy)
        except ValueError:
            return problem
        return replace(problem, path=folder / relative)

    def check(
        self, folder: Path, changes: Changes, now: datetime, *, typeset: bool = True
    ) -> Checked:
        files = {**folder_files(folder)}
        for name, data in changes.items():
            if data is None:
                files.pop(name, None)
            else:
                files[name] = data
        return self.check_files(folder, files, now, typeset=typeset)

    def _new_errors(self, folder: Path, checked: Checked, changes: Changes, now: datetime) -> bool:
        """Errors the change brings: any in a file it writes, and any elsewhere that the
        sequence did not have before (so a course already broken in one file can still
        be fixed one file at a time)."""
        if not checked.errors:
            return False
        if any(p.path.name in changes for p in checked.errors):
            return True
        before = Counter((p.path.name, p.message) for p in self.check(folder, {}, now).errors)
        after = Counter((p.path.name, p.message) for p in checked.errors)
        return bool(after - before)

    # -- writing

    def _apply(
        self,
        folder: Path,
        changes: Changes,
        renames: list[tuple[str, str]],
        expected: Mapping[str, str | None],
        now: datetime,
    ) -> Saved | Refused | Conflict:
        """Check, then (under the folder's lock, the files still as checked) rename, write
        and remove. `expected`: name -> the version the editor read (None: must not exist)."""
        for _attempt in range(3):
            conflict = self._conflict(folder, expected, changes)
            if conflict is not None:
                return conflict
            snapshot = folder_files(folder)
            candidate = {
                **{new: snapshot[old] for old, new in renames if old in snapshot},
                **{k: v for k, v in snapshot.items() if k not in {o for o, _ in renames}},
            }
            for name, data in changes.items():
                if data is None:
                    candidate.pop(name, None)
                else:
                    candidate[name] = data
            checked = self.check_files(folder, candidate, now)
            touched = {**changes, **{new: b"" for _, new in renames}}
            if self._new_errors(folder, checked, touched, now):
                return Refused(checked.problems)
            with folder_lock(folder, exclusive=True):
                if folder_files(folder) != snapshot:
                    continue  # someone changed the folder while we checked: check again
                try:
                    _rename_all(folder, renames)
                    for name, data in changes.items():
                        if data is None:
                            (folder / name).unlink(missing_ok=True)
                        else:
                            write_atomically(folder / name, data)
                except OSError as error:
                    raise StudioError(
                        f"could not write in {folder}: {error.strerror or error} "
                        "(may drip's user write there?)"
                    ) from error
            return Saved(None, "", [p for p in checked.problems if p.severity != "error"])
        raise StudioError("the folder keeps changing while the studio checks it: try again")

    @staticmethod
    def _conflict(
        folder: Path, expected: Mapping[str, str | None], changes: Changes
    ) -> Conflict | None:
        for name, version in expected.items():
            path = folder / name
            disk = read(path) if path.is_file() else None
            if (disk.version if disk else None) != version:
                yours = changes.get(name)
                return Conflict(disk, (yours or b"").decode("utf-8", "replace"))
        return None

    def _commit(
        self, saved: Saved, folder: Path, paths: list[Path], message: str, operator: str
    ) -> Saved:
        if not self.git:
            return saved
        top = course_git.repository(folder)
        if top is None:
            return saved
        try:
            made = course_git.commit(top, paths, message, operator)
        except course_git.GitError as error:
            return replace(saved, git_error=str(error))
        return replace(saved, commit=made)

    # -- what every sequence inherits

    @property
    def site_path(self) -> Path:
        return self.root / SITE_FILE

    def sequence_folders(self) -> list[Path]:
        return sorted(
            p
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / SEQUENCE_FILE).is_file()
        )


def write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder and os.replace: a reader of the
    file sees the old bytes or the new, never half. The old file's mode is kept (a new
    file gets the folder's usual 0644, less the umask)."""
    try:
        mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            if mode is None:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o644 & ~umask
            os.fchmod(handle.fileno(), mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _rename_all(folder: Path, renames: list[tuple[str, str]]) -> None:
    """Rename without ever replacing a file: each new name is made as a hard link, which
    fails if the name exists, before the old name goes (on a filesystem without hard links,
    a rename once the new name is seen to be free: the caller holds the folder's lock). On
    a failure the done ones are undone, so the folder is as it was."""
    done: list[tuple[str, str, bool]] = []  # (old, new, moved rather than linked)
    try:
        for old, new in renames:
            done.append((old, new, _link_or_move(folder / old, folder / new)))
        for old, _new, moved in done:
            if not moved:
                (folder / old).unlink()
    except OSError:
        for old, new, _moved in reversed(done):
            if not (folder / old).exists():
                os.rename(folder / new, folder / old)
            else:
                (folder / new).unlink()
        raise


def _link_or_move(source: Path, target: Path) -> bool:
    """Make `target` name `source`'s file, never over an existing file; True if `source`
    was moved (no hard links here), False if linked (the old name is still there)."""
    try:
        os.link(source, target)
        return False
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
    if target.exists():
        raise FileExistsError(errno.EEXIST, "a file of that name exists", str(target))
    os.rename(source, target)
    return True
