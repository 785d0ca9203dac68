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

A lesson's identity is its file name without the number: moving a lesson renames
`02-small-talk.md` to `03-small-talk.md` and readers mid-course keep their place.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError as RoundTripError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from drip.content.authors import AUTHOR_KEYS, SITE_URL_KEYS
from drip.content.fetch_rule import inside, standing_in
from drip.content.front_matter import split_front_matter
from drip.content.loader import LESSON_FILE, folder_lock, load_sequence
from drip.content.magnets import cache_dir
from drip.content.sequences import Library, Problem, Sequence
from drip.content.site import SITE_FILE, Site, load_site, unsigned
from drip.core import yaml_input
from drip.core.config import Settings
from drip.mail.links import Links, sample_links
from drip.mail.render import SAMPLE_READER, LayoutError, Renderer
from drip.mail.transports import Transport
from drip.studio import course_git
from drip.studio.lint import lint, render_problems
from drip.studio.photos import Photo
from drip.studio.samples import send_test

SEQUENCE_FILE = "sequence.yaml"
MAGNET_FILE = "magnet.md"
CHECKED_SUFFIXES = (".md", ".yaml", ".yml")  # read into the candidate; anything else is linked
NAME_LENGTH = 40  # characters of a new lesson's name, cut at a dash
MAGNET_KEYS = ("title", "subtitle", "credential", "notice")
FORM_KEYS = ("subject", "delay", "preheader", *MAGNET_KEYS)


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


# -- lessons as files --------------------------------------------------------------------------


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
    parts = split_front_matter(text)
    if parts is None:
        return {}, "", text
    front, body, _ = parts
    try:
        meta = yaml_input.load(front) or {}
    except yaml.YAMLError:
        return tolerant_front(front), front, body
    return (meta if isinstance(meta, dict) else tolerant_front(front)), front, body


def _front_chunks(front: str) -> list[tuple[str, str]]:
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
    for key, chunk in _front_chunks(front):
        try:
            data = yaml_input.load(chunk)
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict) and len(data) == 1:
            values.setdefault(key, next(iter(data.values())))
        else:
            values.setdefault(key, chunk.split(":", 1)[1].strip())
    return values


def front_matter_broken(text: str) -> bool:
    """True when a file's front matter is there but does not read as keys and values."""
    parts = split_front_matter(text)
    if parts is None:
        return text.lstrip().startswith("---")
    try:
        return not isinstance(yaml_input.load(parts[0]) or {}, dict)
    except yaml.YAMLError:
        return True


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


def _round_trip() -> YAML:
    handler = YAML()
    handler.width = 4096  # never fold an author's long subject over two lines
    handler.preserve_quotes = True
    return handler


def _quoted(value: str) -> DoubleQuotedScalarString:
    """Author text always double-quoted: plain `yes` or `no` would read as true or false."""
    quoted: DoubleQuotedScalarString = DoubleQuotedScalarString(value)
    return quoted


def with_front_matter(previous: str, values: Mapping[str, str | None], body: str) -> str:
    """A Markdown file with `values` set in its front matter and `body` under it. The
    previous front matter's comments and key order are kept (ruamel.yaml round trip);
    a value of None or "" removes its key. A front matter that does not parse keeps every
    key tolerant_front reads (the form may not show them all)."""
    _, front, _ = _front(previous)
    handler = _round_trip()
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
            data[key] = _quoted(value.strip())
    out = io.StringIO()
    handler.dump(data, out)
    return f"---\n{out.getvalue()}---\n{_clean_body(body)}"


def _tolerant_round_trip(handler: YAML, front: str) -> CommentedMap:
    """A broken front matter as a map to write back: each key whose lines parse kept as
    written, each that does not as the quoted text after its colon (tolerant_front)."""
    data = CommentedMap()
    for key, chunk in _front_chunks(front):
        try:
            one = yaml_input.load_round_trip(handler, chunk)
        except (RoundTripError, yaml.YAMLError):
            one = None
        if key in data:
            continue
        if isinstance(one, CommentedMap) and len(one) == 1:
            data[key] = next(iter(one.values()))
        else:
            data[key] = _quoted(chunk.split(":", 1)[1].strip())
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


def name_for(subject: str, taken: set[str]) -> str:
    """A lesson name from its subject: lowercase ASCII letters, digits and dashes, at most
    NAME_LENGTH characters, unlike every name in `taken` (a removed lesson's name stays
    taken: its readers had it, and would never get a new lesson of that name)."""
    ascii_text = unicodedata.normalize("NFKD", subject).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "lesson"
    if len(words) > NAME_LENGTH:
        words = words[:NAME_LENGTH].rsplit("-", 1)[0] or words[:NAME_LENGTH]
    name, n = words, 2
    while name in taken:
        name, n = f"{words}-{n}", n + 1
    return name


def _file_name(number: int, key: str, count: int) -> str:
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


# -- sequence settings -------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceSettings:
    """The settings form: what an author changes in sequence.yaml from the browser."""

    title: str = ""
    promise: str = ""
    sender: str = ""
    timezone: str = ""
    window_start: str = ""
    window_end: str = ""
    window_days: tuple[str, ...] = ()
    consent: str = ""
    magnet_title: str = ""
    magnet_attach: bool = False


def sequence_settings(text: str) -> SequenceSettings:
    try:
        data = yaml_input.load(text) or {}
    except yaml.YAMLError:
        data = {}
    data = data if isinstance(data, dict) else {}
    raw_window, raw_magnet = data.get("send_window"), data.get("lead_magnet")
    window: dict[str, Any] = raw_window if isinstance(raw_window, dict) else {}
    magnet: dict[str, Any] = raw_magnet if isinstance(raw_magnet, dict) else {}

    def clock_time(value: Any) -> str:
        if isinstance(value, int):  # YAML 1.1 reads 09:00 unquoted as sexagesimal minutes
            return f"{value // 60:02d}:{value % 60:02d}"
        return "" if value is None else str(value)

    days = window.get("days")
    return SequenceSettings(
        title=str(data.get("title") or ""),
        promise=str(data.get("promise") or ""),
        sender=str(data.get("sender") or ""),
        timezone=str(data.get("timezone") or ""),
        window_start=clock_time(window.get("start")),
        window_end=clock_time(window.get("end")),
        window_days=tuple(str(d) for d in days) if isinstance(days, list) else (),
        consent=str(data.get("consent") or ""),
        magnet_title=str(magnet.get("title") or ""),
        magnet_attach=bool(magnet.get("attach", False)),
    )


def settings_text(previous: str, values: SequenceSettings) -> str:
    """sequence.yaml with the form's values, the author's comments and other keys kept."""
    handler = _round_trip()
    try:
        data = yaml_input.load_round_trip(handler, previous) if previous.strip() else None
    except (RoundTripError, yaml.YAMLError) as error:
        raise StudioError(
            "sequence.yaml does not parse as it is, so the form cannot keep its comments: "
            f"fix it in the file first ({' '.join(str(error).split())})"
        ) from error
    if not isinstance(data, CommentedMap):
        data = CommentedMap()

    def put(mapping: CommentedMap, key: str, value: str) -> None:
        if not value.strip():
            mapping.pop(key, None)
        elif key not in mapping or str(mapping[key]) != value.strip():  # else kept as written
            mapping[key] = _quoted(value.strip())

    for key in ("title", "promise", "sender", "timezone", "consent"):
        put(data, key, str(getattr(values, key)))
    window = data.get("send_window")
    if not isinstance(window, CommentedMap):
        window = CommentedMap()
    put(window, "start", values.window_start)
    put(window, "end", values.window_end)
    if not values.window_days:
        window.pop("days", None)
    elif [str(day) for day in window.get("days") or []] != list(values.window_days):
        days = yaml_input.load_round_trip(handler, "[" + ", ".join(values.window_days) + "]")
        days.fa.set_flow_style()
        window["days"] = days
    if window:
        data["send_window"] = window
    else:
        data.pop("send_window", None)
    magnet = data.get("lead_magnet")
    if isinstance(magnet, CommentedMap):
        put(magnet, "title", values.magnet_title)
        if bool(magnet.get("attach", False)) != values.magnet_attach:
            magnet["attach"] = values.magnet_attach
    out = io.StringIO()
    handler.dump(data, out)
    return out.getvalue()


# -- site.yaml: the author and the site's links --------------------------------------------------


@dataclass(frozen=True)
class SiteSettings:
    """The "Site & author" form: what every sequence inherits from site.yaml."""

    name: str = ""
    credential: str = ""
    photo: str = ""  # as the file gives it: author.jpg (in the sequences folder) or https://
    url: str = ""
    privacy_url: str = ""
    after_confirm_url: str = ""


def site_settings(text: str) -> SiteSettings:
    try:
        data = yaml_input.load(text) or {}
    except yaml.YAMLError:
        data = {}
    data = data if isinstance(data, dict) else {}
    raw_author = data.get("author")
    author: dict[str, Any] = raw_author if isinstance(raw_author, dict) else {}

    def text_of(value: Any) -> str:
        return "" if value is None else str(value)

    return SiteSettings(
        **{key: text_of(author.get(key)) for key in AUTHOR_KEYS},
        **{key: text_of(data.get(key)) for key in SITE_URL_KEYS},
    )


def site_text(previous: str, values: SiteSettings) -> str:
    """site.yaml with the form's values, the author's comments and other keys kept. A field
    emptied keeps its key, empty, so the comment beside it (what to put there) stays too."""
    handler = _round_trip()
    try:
        data = yaml_input.load_round_trip(handler, previous) if previous.strip() else None
    except (RoundTripError, yaml.YAMLError) as error:
        raise StudioError(
            f"{SITE_FILE} does not parse as it is, so the form cannot keep its comments: "
            f"fix it in the file first ({' '.join(str(error).split())})"
        ) from error
    if not isinstance(data, CommentedMap):
        data = CommentedMap()

    def put(mapping: CommentedMap, key: str, value: str) -> None:
        value = value.strip()
        if not value:
            if mapping.get(key) not in (None, ""):
                mapping[key] = None
        elif key not in mapping or str(mapping[key]) != value:  # else kept as written
            mapping[key] = _quoted(value)

    author = data.get("author")
    if not isinstance(author, CommentedMap):
        author = CommentedMap()
    for key in AUTHOR_KEYS:
        put(author, key, str(getattr(values, key)))
    if author or "author" in data:
        data["author"] = author
    for key in SITE_URL_KEYS:
        put(data, key, str(getattr(values, key)))
    out = io.StringIO()
    handler.dump(data, out)
    return out.getvalue()


# -- the check ---------------------------------------------------------------------------------


Changes = Mapping[str, bytes | None]  # file name in the folder -> new bytes, or None: removed


def _snapshot(folder: Path) -> dict[str, bytes]:
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


@dataclass(frozen=True)
class Preview:
    """A lesson as the sample reader gets it, from the editor's unsaved text, and what
    `drip check` says of the sequence with that text in it."""

    subject: str
    html: str
    text: str
    problems: list[Problem]


@dataclass(frozen=True)
class TestSent:
    message_id: str
    to: str


@dataclass(frozen=True)
class SitePreview:
    """How readers would see the author with the unsaved site.yaml: a sequence as it would
    load (its sign-up page's author box) and its first lesson, signed, as the sample reader
    gets it."""

    sequence: Sequence | None
    lesson: Preview | None


class Studio:
    """Reads and changes one sequences folder for an operator; see the module's docstring."""

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

    def new_lesson_path(self, slug: str, subject: str, taken: set[str]) -> Path:
        """Where add_lesson would put a lesson of this subject (to preview it unsaved)."""
        folder = self.folder(slug)
        existing = lesson_files(folder)
        key = name_for(subject, taken | {item.key for item in existing})
        number = max((item.number for item in existing), default=0) + 1
        return folder / _file_name(number, key, number)

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
        files = {**_snapshot(folder)}
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
            snapshot = _snapshot(folder)
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
                if _snapshot(folder) != snapshot:
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
            (by_key[key].path.name, _file_name(number, key, len(order)))
            for number, key in enumerate(order, start=1)
        ]
        renames = [(old, new) for old, new in renames if old != new]
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
            (item.path.name, _file_name(number, item.key, len(rest)))
            for number, item in enumerate(rest, start=1)
        ]
        renames = [(old, new) for old, new in renames if old != new]
        before = found.path.read_text(encoding="utf-8", errors="replace")
        outcome = self._apply(
            folder, {found.path.name: None}, renames, {found.path.name: version}, now
        )
        if not isinstance(outcome, Saved):
            return outcome
        saved = replace(outcome, path=found.path, before=before)
        paths = [found.path, *(folder / name for pair in renames for name in pair)]
        message = f"Remove lesson {slug}/{found.path.name}"
        return self._commit(saved, folder, paths, message, operator)

    # -- the unsaved text: preview and test send

    def preview(self, path: Path, text: str, renderer: Renderer, now: datetime) -> Preview:
        """Render `text` as the lesson at `path` for the sample reader (links that lead to
        the preview page), with the Renderer that sends. A variable the check refuses is
        shown as written, so the author sees where it is."""
        folder = path.parent
        checked = self.check(folder, {path.name: text.encode("utf-8")}, now, typeset=False)
        sequence = checked.sequence
        if sequence is None:
            return Preview("", "", "", checked.problems)
        fields = lesson_fields(text)
        try:
            template = renderer.message(
                sequence,
                path.stem.split("-", 1)[-1],
                version_of(text.encode()),
                fields.subject,
                fields.preheader,
                fields.body,
                track=True,
            )
        except LayoutError as error:  # the author sees why there is no preview
            return Preview("", "", "", [*checked.problems, Problem(path, 1, str(error))])
        extra: dict[str, str] = {}
        for _ in range(len(template.tokens) + 1):
            try:
                subject, html, plain = template.parts(
                    SAMPLE_READER, sample_links(self.links), extra
                )
            except KeyError as error:  # a variable drip does not know
                name = str(error.args[0])
                extra[name] = f"{{{{ {name.split(':')[0]} }}}}"
                continue
            return Preview(subject, html, plain, checked.problems)
        return Preview("", "", "", checked.problems)

    def send_test(
        self,
        path: Path,
        text: str,
        to: str,
        transport: Callable[[], Transport],
        now: datetime,
    ) -> TestSent | Refused:
        """Send `text` as the lesson at `path`, unsaved, through the real transport to `to`,
        marked [TEST], its links leading to the test page (drip.studio.samples); refused while the
        check finds an error in it, since a broken lesson could not be sent for real."""
        folder = path.parent
        files = {**_snapshot(folder), path.name: text.encode("utf-8")}
        with self._candidate(folder, files) as copy:
            sequence, problems = load_sequence(copy, self._site())
            key = path.stem.split("-", 1)[-1]
            lesson = sequence.lesson(key) if sequence is not None else None
            if sequence is None or lesson is None:
                return Refused([self._real(p, copy, folder) for p in problems])
            mid = send_test(Renderer(self.settings), self.links, transport, sequence, key, to, now)
        return TestSent(mid, to)

    # -- site.yaml: what every sequence inherits

    @property
    def site_path(self) -> Path:
        return self.root / SITE_FILE

    def site_document(self) -> Document:
        """site.yaml as the form reads it; an absent file reads as empty (the form makes it)."""
        path = self.site_path
        return read(path) if path.is_file() else Document(path, "", version_of(b""))

    def sequence_folders(self) -> list[Path]:
        return sorted(
            p
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / SEQUENCE_FILE).is_file()
        )

    def check_site(self, text: str, now: datetime, *, typeset: bool = True) -> list[Problem]:
        """What `drip check` says with `text` as site.yaml: its own mistakes, then every
        sequence as it would load and render inheriting it, and the unsigned warning."""
        site, problems = load_site(self.root, self.settings.author_name, text=text)
        if any(p.severity == "error" for p in problems):
            return sorted(problems, key=lambda p: p.line)
        usable: dict[str, Sequence] = {}
        for folder in self.sequence_folders():
            checked = self.check_files(folder, _snapshot(folder), now, typeset=typeset, site=site)
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

    def site_preview(self, text: str, renderer: Renderer) -> SitePreview:
        """The first sequence as it would load inheriting `text`, and its first lesson as
        the sample reader would get it (the signature under it), rendered as it is sent."""
        site, problems = load_site(self.root, self.settings.author_name, text=text)
        if any(p.severity == "error" for p in problems):
            return SitePreview(None, None)
        for folder in self.sequence_folders():
            sequence, _ = load_sequence(folder, site)
            if sequence is None or not sequence.lessons:
                continue
            template = renderer.lesson(sequence, sequence.lessons[0])
            try:
                subject, html, plain = template.parts(SAMPLE_READER, sample_links(self.links))
            except KeyError:  # a lesson with a variable drip does not know: no lesson shown
                return SitePreview(sequence, None)
            return SitePreview(sequence, Preview(subject, html, plain, []))
        return SitePreview(None, None)

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
