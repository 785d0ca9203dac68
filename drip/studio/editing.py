"""The author's studio: change a course's files from the browser, the files staying the truth.

Every change (a lesson saved, added, moved or removed, the settings, the lead magnet, an
earlier version restored) goes the same way:

1. the folder as it will be is written to a temporary copy and checked with what
   `drip check` runs (drip.content.sequences loading, drip.studio.lint.render_problems and lint): a
   change that would leave the sequence with an error it did not have is refused, file unchanged;
2. a file the editor opened must still be the version it read (a hash of its bytes), or the
   change is a Conflict carrying the text on disk, so the page can show both;
3. the files are written atomically (a temporary file beside them, then os.replace, the old
   file's mode kept) under the folder's exclusive lock (drip.content.loader.folder_lock), so no
   process loads a sequence halfway through a reorder;
4. where the folder is in a git repository, the change is a commit by the operator
   (drip.studio.course_git), unless DRIP_STUDIO_GIT is off.

site.yaml (the author and the site's links) goes the same way, but every sequence inherits
it, so a change to it is checked with each of them (Studio.save_site).

The parts it rests on: drip.studio.save_path (steps 1 to 4), drip.studio.lesson_format (a
lesson's front matter), drip.studio.yaml_forms (the settings forms' YAML round trip),
drip.studio.previews (unsaved text rendered or test-sent), drip.studio.outcomes.

A lesson's identity is its file name without the number: moving a lesson renames
`02-small-talk.md` to `03-small-talk.md` and readers mid-course keep their place.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import yaml

from drip.content.fetch_rule import inside
from drip.content.loader import folder_lock
from drip.content.names import name_for
from drip.content.sequences import Problem, Sequence
from drip.content.site import SITE_FILE, load_site, unsigned
from drip.content.variants import following, variant_files
from drip.core import yaml_input
from drip.studio import course_git
from drip.studio.lesson_format import LessonFields, file_name, lesson_files, lesson_text
from drip.studio.outcomes import (
    Conflict,
    Document,
    Outcome,
    Refused,
    Saved,
    StudioError,
    read,
    version_of,
)
from drip.studio.photos import Photo
from drip.studio.previews import Previewing
from drip.studio.save_path import SEQUENCE_FILE, folder_files, write_atomically


class Studio(Previewing):
    """Reads and changes one sequences folder for an operator; see the module's docstring."""

    # -- paths

    def new_lesson_path(self, slug: str, subject: str, taken: set[str]) -> Path:
        """Where add_lesson would put a lesson of this subject (to preview it unsaved)."""
        folder = self.folder(slug)
        existing = lesson_files(folder)
        key = name_for(subject, taken | {item.key for item in existing})
        number = max((item.number for item in existing), default=0) + 1
        return folder / file_name(number, key, number)

    def magnet_path(self, slug: str) -> Path | None:
        """The lead magnet's Markdown, as sequence.yaml names it (None: the course has none)."""
        folder = self.folder(slug)
        try:
            data = yaml_input.load((folder / SEQUENCE_FILE).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            return None
        magnet = data.get("lead_magnet") if isinstance(data, dict) else None
        if not isinstance(magnet, dict) or not magnet.get("file"):
            return None
        path = folder / str(magnet["file"])
        return path if path.parent == folder and inside(path, folder) is not None else None

    # -- the operations

    def save(
        self, path: Path, text: str, version: str, operator: str, now: datetime, why: str = ""
    ) -> Outcome:
        """Write `text` to `path` (a file of a sequence folder) if the sequence still
        passes the check and the file is still the `version` the editor opened."""
        folder = path.parent
        data = text.encode("utf-8")
        before = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        outcome = self._apply(folder, {path.name: data}, [], {path.name: version}, now)
        if not isinstance(outcome, Saved):
            return outcome
        saved = replace(outcome, path=path, version=version_of(data), before=before, after=text)
        message = why or f"Edit {folder.name}/{path.name}"
        return self._commit(saved, folder, [path], message, operator)

    def add_lesson(
        self, slug: str, fields: LessonFields, taken: set[str], operator: str, now: datetime
    ) -> Outcome:
        """A new lesson at the end, named from its subject (never a name in `taken`, the
        names readers have had). It goes to readers once saved, so it must pass the check
        with its body written."""
        folder = self.folder(slug)
        name = self.new_lesson_path(slug, fields.subject, taken).name
        text = lesson_text("", fields)
        outcome = self._apply(folder, {name: text.encode()}, [], {name: None}, now)
        if not isinstance(outcome, Saved):
            return outcome
        path = folder / name
        saved = replace(outcome, path=path, version=version_of(text.encode()), after=text)
        return self._commit(saved, folder, [path], f"Add lesson {slug}/{name}", operator)

    def reorder(self, slug: str, order: list[str], operator: str, now: datetime) -> Outcome:
        """Renumber the lessons into `order` (their names, every one once): 01, 02 ...
        Names stay, so each reader still gets the first lesson they have not had."""
        folder = self.folder(slug)
        existing = lesson_files(folder)
        if sorted(order) != sorted(item.key for item in existing):
            raise StudioError(
                "the lessons changed since the page was shown: reload it and move them again"
            )
        by_key = {item.key: item for item in existing}
        renames = [
            (by_key[key].path.name, file_name(number, key, len(order)))
            for number, key in enumerate(order, start=1)
        ]
        renames = [(old, new) for old, new in renames if old != new]
        renames += following(folder, renames)  # a lesson's variant files move with it
        before = "\n".join(item.path.name for item in existing)
        if not renames:
            return Saved(None, "", before=before, after=before)
        expected = {old: version_of((folder / old).read_bytes()) for old, _ in renames}
        outcome = self._apply(folder, {}, renames, expected, now)
        if not isinstance(outcome, Saved):
            return outcome
        after = "\n".join(item.path.name for item in lesson_files(folder))
        saved = replace(outcome, before=before, after=after)
        paths = [folder / name for pair in renames for name in pair]
        return self._commit(saved, folder, paths, f"Reorder {slug}: {', '.join(order)}", operator)

    def move(self, slug: str, key: str, step: int, operator: str, now: datetime) -> Outcome:
        """One lesson one place earlier (step -1) or later (+1)."""
        order = [item.key for item in lesson_files(self.folder(slug))]
        if key not in order:
            raise StudioError(f"there is no lesson {key!r} in {slug}")
        index = order.index(key)
        target = index + step
        if not 0 <= target < len(order):
            raise StudioError(f"{key} is already the {'first' if step < 0 else 'last'} lesson")
        order[index], order[target] = order[target], order[index]
        return self.reorder(slug, order, operator, now)

    def remove(self, slug: str, key: str, version: str, operator: str, now: datetime) -> Outcome:
        """Take a lesson out, and renumber the ones after it so the numbers have no gap.
        Readers who had it keep their delivery; the others get the next lesson in order,
        and no one gets any lesson twice."""
        folder = self.folder(slug)
        existing = lesson_files(folder)
        found = next((item for item in existing if item.key == key), None)
        if found is None:
            raise StudioError(f"there is no lesson {key!r} in {slug}")
        rest = [item for item in existing if item is not found]
        renames = [
            (item.path.name, file_name(number, item.key, len(rest)))
            for number, item in enumerate(rest, start=1)
        ]
        renames = [(old, new) for old, new in renames if old != new]
        renames += following(folder, renames)  # a lesson's variant files move with it
        gone = {name: None for name in [found.path.name, *variant_files(folder, found.path.name)]}
        before = found.path.read_text(encoding="utf-8", errors="replace")
        outcome = self._apply(folder, gone, renames, {found.path.name: version}, now)
        if not isinstance(outcome, Saved):
            return outcome
        saved = replace(outcome, path=found.path, before=before)
        paths = [*(folder / name for name in gone), *(folder / n for pair in renames for n in pair)]
        message = f"Remove lesson {slug}/{found.path.name}"
        return self._commit(saved, folder, paths, message, operator)

    # -- site.yaml: what every sequence inherits

    def site_document(self) -> Document:
        """site.yaml as the form reads it; an absent file reads as empty (the form makes it)."""
        path = self.site_path
        return read(path) if path.is_file() else Document(path, "", version_of(b""))

    def check_site(self, text: str, now: datetime, *, typeset: bool = True) -> list[Problem]:
        """What `drip check` says with `text` as site.yaml: its own mistakes, then every
        sequence as it would load and render inheriting it, and the unsigned warning."""
        site, problems = load_site(self.root, self.settings.author_name, text=text)
        if any(p.severity == "error" for p in problems):
            return sorted(problems, key=lambda p: p.line)
        usable: dict[str, Sequence] = {}
        for folder in self.sequence_folders():
            checked = self.check_files(
                folder, folder_files(folder), now, typeset=typeset, site=site
            )
            problems += checked.problems
            if checked.sequence is not None and not checked.errors:
                usable[folder.name] = checked.sequence
        problems += unsigned(site, usable)
        problems.sort(key=lambda p: (p.severity != "error", p.path != self.site_path, p.line))
        return problems

    def save_site(
        self,
        text: str,
        version: str,
        operator: str,
        now: datetime,
        photo: Photo | None = None,
        why: str = "",
    ) -> Outcome:
        """Write site.yaml (and an uploaded photo beside it) if every sequence still passes
        the check inheriting it and the file is still the `version` the form opened. A photo
        written for a save that is then refused is taken away again."""
        made: Path | None = None
        outcome: Outcome | None = None
        try:
            if photo is not None and not (self.root / photo.name).is_file():
                made = self.root / photo.name
                write_atomically(made, photo.data)
            outcome = self._write_site(text, version, now)
        except OSError as error:
            raise StudioError(
                f"could not write in {self.root}: {error.strerror or error} "
                "(may drip's user write there?)"
            ) from error
        finally:
            if made is not None and not isinstance(outcome, Saved):
                made.unlink(missing_ok=True)
        if not isinstance(outcome, Saved):
            return outcome
        paths = [self.site_path, *([self.root / photo.name] if photo is not None else [])]
        message = why or f"Edit {SITE_FILE}: the author"
        return self._commit(outcome, self.root, paths, message, operator)

    def _write_site(self, text: str, version: str, now: datetime) -> Outcome:
        path, data = self.site_path, text.encode("utf-8")
        for _attempt in range(3):
            disk = self.site_document()
            if disk.version != version:
                return Conflict(disk if path.is_file() else None, text)
            problems = self.check_site(text, now)
            errors = [p for p in problems if p.severity == "error"]
            if errors:
                before = Counter(
                    (p.path, p.message)
                    for p in self.check_site(disk.text, now)
                    if p.severity == "error"
                )
                brought = Counter((p.path, p.message) for p in errors) - before
                if any(p.path == path for p in errors) or brought:
                    return Refused(problems)
            with folder_lock(self.root, exclusive=True):
                if self.site_document().version != disk.version:
                    continue  # changed while we checked: check again
                write_atomically(path, data)
            warnings = [p for p in problems if p.severity != "error"]
            return Saved(path, version_of(data), warnings, before=disk.text, after=text)
        raise StudioError(f"{SITE_FILE} keeps changing while the studio checks it: try again")

    # -- history

    def history(self, path: Path) -> list[course_git.Version]:
        """Each committed version of a file, newest first (empty without git)."""
        top = course_git.repository(path.parent) if self.git else None
        return course_git.history(top, path) if top is not None else []

    def _version_at(self, path: Path, commit: str) -> tuple[str, str]:
        """(the text of `path` at `commit` of its history, the commit's short id)."""
        top = course_git.repository(path.parent) if self.git else None
        if top is None:
            raise StudioError("the sequences folder is not in a git repository: no history")
        known = {item.commit: item for item in course_git.history(top, path)}
        chosen = known.get(commit)
        if chosen is None:
            raise StudioError(f"commit {commit[:10]} is not in the history of {path.name}")
        text = course_git.show(top, chosen.commit, chosen.path).decode("utf-8", "replace")
        return text, chosen.short

    def restore(
        self, path: Path, commit: str, version: str, operator: str, now: datetime
    ) -> Outcome:
        """Put back the file as it was at `commit`: a save like any other (checked, and
        refused over a newer version on disk), and so a new commit."""
        text, short = self._version_at(path, commit)
        why = f"Restore {path.parent.name}/{path.name} as of {short}"
        return self.save(path, text, version, operator, now, why=why)

    def restore_site(self, commit: str, version: str, operator: str, now: datetime) -> Outcome:
        """site.yaml as it was at `commit`, saved like the form's save (checked across
        every sequence, refused over a newer version on disk)."""
        text, short = self._version_at(self.site_path, commit)
        why = f"Restore {SITE_FILE} as of {short}"
        return self.save_site(text, version, operator, now, why=why)
