"""Sequences as files: `sequences/<slug>/sequence.yaml` plus one `NN-name.md` per lesson.

`load_sequences()` returns every sequence it could read and a list of problems, each with the
file and line, so `drip check` can print them and the dispatcher can hold a broken sequence
instead of skipping or mangling its lessons.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from drip.content.authors import AUTHOR_KEYS, SITE_URL_KEYS, Author, is_placeholder, read_author
from drip.content.authors import read_site_urls as _read_site_urls
from drip.content.fetch_rule import inside
from drip.core import yaml_input

LESSON_FILE = re.compile(r"^(?P<number>\d+)-(?P<key>[a-z0-9][a-z0-9-]*)\.md$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
DELAY = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
# "2 days", "1 week", "36 hours", "1 day 12 hours", "90 minutes": what an author writes
DELAY_WORD = re.compile(
    r"(\d+)\s*(weeks?|w|days?|d|hours?|hrs?|h|minutes?|mins?|m)\b", re.IGNORECASE
)
DELAY_WORDS = re.compile(r"^(?:\s*(?:,|and)?\s*\d+\s*[a-z]+)+\s*$", re.IGNORECASE)
VARIABLE = re.compile(
    r"\{\{\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?:\|\s*default\(\s*\"(?P<default>[^\"{}]*)\"\s*\)\s*"
    r"|\(\s*\"(?P<arg>[^\"{}]*)\"\s*\)\s*)?\}\}"
)
TAG_LINK = "tag_link"  # {{ tag_link("has-dates") }}: a link that tags the reader who opens it
EXIT_TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")  # as drip.audience.tags.TAG
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
BLOG_URL = "blog_url"  # the author's blog (author.url); a paragraph holding it needs one
LESSON_VARIABLES = frozenset(
    {"first_name", "unsubscribe_url", "preferences_url", TAG_LINK, BLOG_URL}
)
MAGNET_VARIABLES = frozenset({"lead_magnet_url"})
OUTSIDE_LESSON = (
    "this lesson is a link to a file outside the course folder: "
    "drip reads only the folder's own files, so copy the lesson in"
)
SIGNUP_FIELDS = frozenset({"exam_date", "responsibilities"})
SEQUENCE_KEYS = frozenset(
    {
        "title",
        "promise",
        "sender",
        "reply_to",
        "timezone",
        "send_window",
        "double_opt_in",
        "consent",
        "lead_magnet",
        "signup_fields",
        "track_links",
        "utm",
        "track_opens",
        "exit_when",
        "on_complete",
        "author",
        "privacy_url",
        "after_confirm_url",
    }
)
SITE_FILE = "site.yaml"  # sequences/site.yaml: what every sequence inherits
SITE_KEYS = frozenset({"author", *SITE_URL_KEYS})
WINDOW_KEYS = frozenset({"start", "end", "days"})
MAGNET_KEYS = frozenset({"title", "file", "attach"})
LESSON_KEYS = frozenset({"subject", "delay", "preheader"})
DEFAULT_CONSENT = "Yes, send me this email course. I can unsubscribe with one click at any time."


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        return f"{self.path}:{self.line}: {prefix}{self.message}"


@dataclass(frozen=True)
class Delay:
    """Days and weeks are calendar days in the reader's time zone; hours and minutes elapse."""

    days: int = 0
    seconds: int = 0

    @property
    def immediate(self) -> bool:
        return self.days == 0 and self.seconds == 0

    @classmethod
    def parse(cls, text: str) -> Delay:
        text = text.strip()
        if text == "0":
            return cls()
        match = DELAY.match(text)
        if match and text:
            weeks, days, hours, minutes = (int(g) if g else 0 for g in match.groups())
            return cls(days=weeks * 7 + days, seconds=hours * 3600 + minutes * 60)
        words = DELAY_WORD.findall(text)
        if words and DELAY_WORDS.match(text) and len(words) == len(re.findall(r"\d+", text)):
            days = seconds = 0
            for number, unit in words:
                first = unit[0].lower()
                if first == "w":
                    days += int(number) * 7
                elif first == "d":
                    days += int(number)
                elif first == "h":
                    seconds += int(number) * 3600
                else:
                    seconds += int(number) * 60
            return cls(days=days, seconds=seconds)
        raise ValueError(
            f"bad delay {text!r}: use 0 or a number with a unit, e.g. 2 days, "
            "1 week, 36 hours (or 2d, 1w, 36h)"
        )

    def __str__(self) -> str:
        if self.immediate:
            return "0"
        parts = [f"{self.days}d"] if self.days else []
        hours, rest = divmod(self.seconds, 3600)
        parts += [f"{hours}h"] if hours else []
        parts += [f"{rest // 60}m"] if rest else []
        return "".join(parts)

    def as_timedelta(self) -> timedelta:
        return timedelta(days=self.days, seconds=self.seconds)


@dataclass(frozen=True)
class SendWindow:
    start: time = time(9, 0)
    end: time = time(17, 0)
    days: frozenset[int] = frozenset(range(7))  # Monday is 0, as in datetime.weekday()


@dataclass(frozen=True)
class LeadMagnet:
    title: str
    source: Path
    attach: bool = False


@dataclass(frozen=True)
class Lesson:
    key: str
    number: int
    path: Path
    subject: str
    delay: Delay
    preheader: str
    body: str
    body_line: int  # line of the file where the Markdown body starts
    version: str  # hash of the file; each delivery records the version it sent


@dataclass(frozen=True)
class Sequence:
    slug: str
    path: Path
    title: str
    promise: str
    sender: str | None
    reply_to: str | None
    timezone: str
    window: SendWindow
    double_opt_in: bool
    consent: str
    lead_magnet: LeadMagnet | None
    signup_fields: tuple[str, ...]
    lessons: tuple[Lesson, ...] = field(default=())
    track_links: bool = False  # lesson links go through /l/<token>, which counts the click
    utm: bool = False  # tracked links get utm_source=drip&utm_medium=email&...
    track_opens: bool = False  # an open pixel: off by default, and opens lie (docs/authoring.md)
    exit_when: str | None = None  # a tag that ends the course early: the reader reached the goal
    on_complete: tuple[str, str] | None = None  # ("enroll" or "offer", the next course's slug)
    continues_from: tuple[str, ...] = ()  # titles of the courses that enroll into this one
    author: Author = field(default_factory=Author)  # site.yaml's, overridden field by field
    privacy_url: str = ""
    after_confirm_url: str = ""  # where the "you're in" page offers to go on to

    def lesson(self, key: str) -> Lesson | None:
        return next((lesson for lesson in self.lessons if lesson.key == key), None)

    def lesson_named(self, name: str) -> Lesson | None:
        """The lesson an author names on the command line: its key (`small-talk`) or its
        file name without `.md` (`02-small-talk`)."""
        return self.lesson(name) or next(
            (item for item in self.lessons if f"{item.number:02d}-{item.key}" == name), None
        )

    def next_lesson(self, sent: set[str] | frozenset[str]) -> Lesson | None:
        """The first lesson, in the current order, that this reader has not had."""
        return next((lesson for lesson in self.lessons if lesson.key not in sent), None)

    def summary(self) -> str:
        magnet = f", lead magnet {self.lead_magnet.source.name}" if self.lead_magnet else ""
        days = sum(lesson.delay.days for lesson in self.lessons)
        return (
            f"{self.slug}: {len(self.lessons)} lessons over about {days} days"
            f"{magnet}, {'double' if self.double_opt_in else 'single'} opt-in"
        )


@dataclass
class Library:
    """What `load_sequences` found: usable sequences, and problems by sequence slug."""

    sequences: dict[str, Sequence]
    problems: list[Problem]
    broken: dict[str, list[Problem]]
    # A broken sequence's settings, as far as they could be read: its sign-up form stays up
    # (the sign-ups wait in the queue until it is fixed), though nothing is sent from it.
    held_forms: dict[str, Sequence] = field(default_factory=dict)

    def get(self, slug: str) -> Sequence | None:
        return self.sequences.get(slug)

    def for_sign_up(self, slug: str) -> Sequence | None:
        """The sequence whose sign-up form to show: a usable one, or a broken one (its
        sign-ups wait); None only when no such sequence exists."""
        return self.sequences.get(slug) or self.held_forms.get(slug)

    def broken_reason(self, slug: str) -> str | None:
        """Why a sequence whose files are there cannot be used, or None if it is not broken.
        (What to say of a sequence that is not there at all depends on who asks.)"""
        if slug not in self.broken:
            return None
        return f"sequence {slug!r} has problems: the admin's Sequences page says what to fix"


def _line_of_keys(text: str) -> dict[str, int]:
    """1-based line of each top-level key (and of nested keys as 'parent.child')."""
    lines: dict[str, int] = {}
    try:
        node = yaml_input.compose(text)
    except yaml.YAMLError:
        return lines
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            lines[str(key_node.value)] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.MappingNode):
                for sub_key, _ in value_node.value:
                    lines[f"{key_node.value}.{sub_key.value}"] = sub_key.start_mark.line + 1
    return lines


CURLY_QUOTES = "“”‘’"


def _yaml_error(path: Path, error: yaml.YAMLError, offset: int = 0, text: str = "") -> Problem:
    """The parser's complaint in words an author can act on, at the line to fix."""
    if isinstance(error, yaml_input.YamlRefused):
        return Problem(path, error.line + offset, error.reason)
    mark = getattr(error, "problem_mark", None)
    context = getattr(error, "context_mark", None)
    line = (mark.line + 1) if mark is not None else 1
    what = str(getattr(error, "problem", None) or error)
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    key = here.split(":", 1)[0].strip() or "the value"
    unclosed = _unclosed_quote(lines[:line])
    if any(quote in here for quote in CURLY_QUOTES):
        message = (
            f"line {line} has curly quotes (“ ” or ‘ ’), as a word processor types "
            "them; YAML needs straight quotes: retype them as \" or '"
        )
    elif "mapping values are not allowed" in what:
        message = (
            f"the {key} has a colon (:) in it: put the {key} in quotes, e.g. "
            f'{key}: "Step 2: small talk"'
        )
    elif unclosed is not None or "while scanning a quoted scalar" in str(
        getattr(error, "context", "")
    ):
        line = unclosed or ((context.line + 1) if context is not None else line)
        message = (
            f"a quote opened on line {line + offset} is never closed: end the text "
            "with the same quote mark it starts with"
        )
    else:
        message = f"this is not valid YAML ({what})"
    return Problem(path, line + offset, message)


def _unclosed_quote(lines: list[str]) -> int | None:
    """The 1-based line whose value opens a quote that the line does not close, if any."""
    for number, text in enumerate(lines, start=1):
        value = text.split(":", 1)[1].strip() if ":" in text else ""
        if value[:1] in ("'", '"') and (len(value) == 1 or not value.endswith(value[0])):
            return number
    return None


def _parse_time(value: Any) -> time:
    if isinstance(value, int):  # YAML 1.1 reads 09:00 unquoted as a sexagesimal number
        return time(value // 60, value % 60)
    return time.fromisoformat(str(value))


def _parse_window(
    raw: Any, path: Path, lines: dict[str, int], problems: list[Problem]
) -> SendWindow:
    line = lines.get("send_window", 1)
    if raw is None:
        return SendWindow()
    if isinstance(raw, str | int):
        raw = {"start": raw}
    if not isinstance(raw, dict):
        problems.append(Problem(path, line, "send_window must be a mapping with start, end, days"))
        return SendWindow()
    for key in raw:
        if key not in WINDOW_KEYS:
            problems.append(
                Problem(
                    path,
                    lines.get(f"send_window.{key}", line),
                    f"unknown key send_window.{key} (allowed: start, end, days)",
                )
            )
    try:
        start = _parse_time(raw.get("start", "09:00"))
        end = (
            _parse_time(raw["end"]) if "end" in raw else time(min(start.hour + 8, 23), start.minute)
        )
    except (ValueError, TypeError):
        problems.append(Problem(path, line, 'send_window start and end are times like "09:00"'))
        return SendWindow()
    if end <= start:
        problems.append(
            Problem(
                path,
                lines.get("send_window.end", line),
                "send_window end must be later than its start",
            )
        )
        return SendWindow()
    days_raw = raw.get("days", list(DAYS))
    if not isinstance(days_raw, list) or any(str(d).lower()[:3] not in DAYS for d in days_raw):
        problems.append(
            Problem(
                path,
                lines.get("send_window.days", line),
                f"send_window days must be a list drawn from {', '.join(DAYS)}",
            )
        )
        return SendWindow(start, end)
    days = frozenset(DAYS.index(str(d).lower()[:3]) for d in days_raw)
    if not days:
        problems.append(
            Problem(
                path,
                lines.get("send_window.days", line),
                "send_window days must name at least one day",
            )
        )
        return SendWindow(start, end)
    return SendWindow(start, end, days)


def _check_address(
    value: Any, key: str, path: Path, lines: dict[str, int], problems: list[Problem]
) -> str | None:
    if value is None:
        return None
    text = str(value)
    if "@" not in text or "\n" in text or "\r" in text:
        problems.append(
            Problem(
                path, lines.get(key, 1), f'{key} must be an address like "Name <you@example.org>"'
            )
        )
        return None
    return text


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


def _load_sequence_file(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        text = read_whole(path)
    except Unreadable as error:
        problems.append(Problem(path, 1, f"{path.name} {error}"))
        return None
    try:
        data = yaml_input.load(text)
    except yaml.YAMLError as error:
        problems.append(_yaml_error(path, error, text=text))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(path, 1, "sequence.yaml must be a mapping of keys to values"))
        return None
    data["__lines__"] = _line_of_keys(text)
    return data


@dataclass(frozen=True)
class Site:
    """What `sequences/site.yaml` gives every sequence, with DRIP_AUTHOR_NAME as the name
    where no file gives one."""

    path: Path
    author: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def line(self, key: str) -> int:
        return _key_line(self.lines, key)


def _key_line(lines: dict[str, int], key: str) -> int:
    """The line of `author.url`, else of `author:` (a flow mapping has no lines of its own)."""
    return lines.get(key) or lines.get(key.split(".")[0]) or 1


def load_site(
    root: Path, author_name: str = "", text: str | None = None
) -> tuple[Site, list[Problem]]:
    """site.yaml under `root` (it may be absent), and its problems at their lines. `text`
    reads as the file's text instead (the studio's check of an unsaved change)."""
    path = root / SITE_FILE
    problems: list[Problem] = []
    defaults = {"name": author_name} if author_name else {}
    if text is None:
        if not path.is_file():
            return Site(path, defaults), problems
        text = path.read_text(encoding="utf-8")
    try:
        data = yaml_input.load(text) or {}
    except yaml.YAMLError as error:
        return Site(path, defaults), [_yaml_error(path, error, text=text)]
    if not isinstance(data, dict):
        return Site(path, defaults), [
            Problem(path, 1, "site.yaml must be a mapping of keys to values")
        ]
    lines = _line_of_keys(text)
    for key in data:
        if key not in SITE_KEYS:
            allowed = ", ".join(sorted(SITE_KEYS))
            problems.append(
                Problem(path, lines.get(key, 1), f"unknown key {key!r} (allowed: {allowed})")
            )
    author, found = read_author(data.get("author"), root, root)
    urls, found_urls = _read_site_urls(data)
    for key, message in [*found, *found_urls]:
        problems.append(Problem(path, _key_line(lines, key), message))
    named = author.get("name", "")
    if author_name and named and named != author_name:
        problems.append(
            Problem(
                path,
                _key_line(lines, "author.name"),
                f"DRIP_AUTHOR_NAME ({author_name!r}) and author.name ({named!r}) differ; "
                "the file's name is used: drop one of them",
                "warning",
            )
        )
    if not named:  # an empty name in the file leaves DRIP_AUTHOR_NAME's in place
        author.pop("name", None)
    return Site(path, {**defaults, **author}, urls, lines), problems


def _author(
    site: Site, data: dict[str, Any], path: Path, lines: dict[str, int], problems: list[Problem]
) -> tuple[Author, dict[str, str]]:
    """The sequence's author (site.yaml's, overridden by its own `author:` field by field)
    and its privacy and after-confirm links."""
    own, found = read_author(data.get("author"), path.parent, site.path.parent)
    urls, found_urls = _read_site_urls(data)
    for key, message in [*found, *found_urls]:
        problems.append(Problem(path, _key_line(lines, key), message))
    name = own.get("name", "")
    if name and is_placeholder(name):
        problems.append(
            Problem(
                path,
                _key_line(lines, "author.name"),
                f"author.name {name!r} is a placeholder: put in the name readers should see",
                "warning",
            )
        )
    # An empty `name:` inherits the site's name rather than unsigning the course; any other
    # field left empty (a guest author without a blog) clears the inherited one.
    merged = {**site.author, **{key: value for key, value in own.items() if value or key != "name"}}
    return Author(**{key: merged.get(key, "") for key in AUTHOR_KEYS}), {**site.urls, **urls}


def _build_sequence(
    folder: Path, data: dict[str, Any], problems: list[Problem], site: Site | None = None
) -> Sequence:
    path = folder / "sequence.yaml"
    lines: dict[str, int] = data.pop("__lines__")
    author, urls = _author(site or Site(folder.parent / SITE_FILE), data, path, lines, problems)
    for key in data:
        if key not in SEQUENCE_KEYS:
            allowed = ", ".join(sorted(SEQUENCE_KEYS))
            problems.append(
                Problem(path, lines.get(key, 1), f"unknown key {key!r} (allowed: {allowed})")
            )
    for key in ("title", "promise"):
        if not str(data.get(key) or "").strip():
            problems.append(Problem(path, lines.get(key, 1), f"missing {key}"))
    if "\n" in str(data.get("promise", "")).strip():
        problems.append(Problem(path, lines.get("promise", 1), "promise must be one line"))
    timezone = str(data.get("timezone") or "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            Problem(
                path,
                lines.get("timezone", 1),
                f"unknown time zone {timezone!r} (use an IANA name such as America/New_York)",
            )
        )
        timezone = "UTC"
    double_opt_in = data.get("double_opt_in", True)
    if not isinstance(double_opt_in, bool):
        problems.append(
            Problem(path, lines.get("double_opt_in", 1), "double_opt_in must be true or false")
        )
        double_opt_in = True
    magnet: LeadMagnet | None = None
    raw_magnet = data.get("lead_magnet")
    if raw_magnet is not None:
        line = lines.get("lead_magnet", 1)
        if not isinstance(raw_magnet, dict) or not raw_magnet.get("file"):
            problems.append(Problem(path, line, "lead_magnet needs at least a file"))
        else:
            for key in raw_magnet:
                if key not in MAGNET_KEYS:
                    problems.append(
                        Problem(
                            path,
                            lines.get(f"lead_magnet.{key}", line),
                            f"unknown key lead_magnet.{key} (allowed: title, file, attach)",
                        )
                    )
            source = folder / str(raw_magnet["file"])
            if not source.is_file():
                problems.append(
                    Problem(
                        path,
                        lines.get("lead_magnet.file", line),
                        f"lead magnet file {source.name} does not exist",
                    )
                )
            elif inside(source, folder) is None:
                problems.append(
                    Problem(
                        path,
                        lines.get("lead_magnet.file", line),
                        f"lead magnet file {raw_magnet['file']} is not in the course folder "
                        "(or is a link out of it): drip reads only the folder's own files",
                    )
                )
            magnet = LeadMagnet(
                title=str(raw_magnet.get("title") or data.get("title") or ""),
                source=source,
                attach=bool(raw_magnet.get("attach", False)),
            )
    fields_raw = data.get("signup_fields") or []
    if not isinstance(fields_raw, list) or any(f not in SIGNUP_FIELDS for f in fields_raw):
        problems.append(
            Problem(
                path,
                lines.get("signup_fields", 1),
                f"signup_fields may list only {', '.join(sorted(SIGNUP_FIELDS))}",
            )
        )
        fields_raw = []
    return Sequence(
        slug=folder.name,
        path=folder,
        title=str(data.get("title") or folder.name).strip(),
        promise=str(data.get("promise") or "").strip(),
        sender=_check_address(data.get("sender"), "sender", path, lines, problems),
        reply_to=_check_address(data.get("reply_to"), "reply_to", path, lines, problems),
        timezone=timezone,
        window=_parse_window(data.get("send_window"), path, lines, problems),
        double_opt_in=double_opt_in,
        consent=str(data.get("consent") or DEFAULT_CONSENT).strip(),
        lead_magnet=magnet,
        signup_fields=tuple(fields_raw),
        track_links=_flag(data, "track_links", path, lines, problems),
        utm=_flag(data, "utm", path, lines, problems),
        track_opens=_flag(data, "track_opens", path, lines, problems),
        exit_when=_exit_tag(data.get("exit_when"), path, lines, problems),
        on_complete=_on_complete(data.get("on_complete"), path, lines, problems),
        author=author,
        privacy_url=urls.get("privacy_url", ""),
        after_confirm_url=urls.get("after_confirm_url", ""),
    )


def _on_complete(
    value: Any, path: Path, lines: dict[str, int], problems: list[Problem]
) -> tuple[str, str] | None:
    if value is None:
        return None
    line = lines.get("on_complete", 1)
    if (
        not isinstance(value, dict)
        or len(value) != 1
        or next(iter(value)) not in ("enroll", "offer")
    ):
        problems.append(
            Problem(
                path,
                line,
                "on_complete is {enroll: <slug>} (start that "
                "course) or {offer: <slug>} (one email offering it)",
            )
        )
        return None
    action, slug = next(iter(value.items()))
    if not isinstance(slug, str) or not SLUG.match(slug):
        problems.append(
            Problem(
                path,
                line,
                f"on_complete.{action} names a sequence by its folder name, e.g. networking-tips",
            )
        )
        return None
    return action, slug


def _exit_tag(value: Any, path: Path, lines: dict[str, int], problems: list[Problem]) -> str | None:
    if value is None:
        return None
    tag = str(value).strip().lower()
    if not EXIT_TAG.match(tag):
        problems.append(
            Problem(
                path,
                lines.get("exit_when", 1),
                "exit_when is a tag: up to "
                "40 lowercase letters, digits and dashes, e.g. booked-a-call",
            )
        )
        return None
    return tag


def _flag(
    data: dict[str, Any], key: str, path: Path, lines: dict[str, int], problems: list[Problem]
) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        problems.append(Problem(path, lines.get(key, 1), f"{key} must be true or false"))
        return False
    return value


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
        problems.append(_yaml_error(path, error, offset=1, text=front))
        return None
    if not isinstance(meta, dict):
        problems.append(Problem(path, 2, "front matter must be keys and values"))
        return None
    return meta


def _load_lesson(
    path: Path, match: re.Match[str], allowed: frozenset[str], problems: list[Problem]
) -> Lesson | None:
    try:
        text = read_whole(path)
    except Unreadable as error:
        problems.append(Problem(path, 1, f"{path.name} {error}"))
        return None
    parts = split_front_matter(text)
    if parts is None:
        problems.append(
            Problem(
                path,
                1,
                "a lesson starts with front matter between --- lines "
                "(subject, delay, optional preheader)",
            )
        )
        return None
    front, body, body_line = parts
    meta = read_front_matter(path, front, problems)
    if meta is None:
        return None
    lines = {k: v + 1 for k, v in _line_of_keys(front).items()}
    ok = True
    for key in meta:
        if key not in LESSON_KEYS:
            problems.append(
                Problem(
                    path,
                    lines.get(key, 2),
                    f"unknown key {key!r} (allowed: subject, delay, preheader)",
                )
            )
            ok = False
    subject = str(meta.get("subject") or "").strip()
    if not subject:
        problems.append(Problem(path, lines.get("subject", 2), "missing subject"))
        ok = False
    if "delay" not in meta:
        problems.append(Problem(path, 2, "missing delay (0, 36h, 2d, 1w ...)"))
        ok = False
        delay = Delay()
    else:
        try:
            delay = Delay.parse(str(meta["delay"]))
        except ValueError as error:
            problems.append(Problem(path, lines.get("delay", 2), str(error)))
            ok = False
            delay = Delay()
    preheader = str(meta.get("preheader") or "").strip()
    for chunk, first_line in (
        (subject, lines.get("subject", 2)),
        (preheader, lines.get("preheader", 2)),
        (body, body_line),
    ):
        for problem in check_variables(chunk, allowed, path, first_line):
            problems.append(problem)
            ok = False
    if not body.strip():
        problems.append(Problem(path, body_line, "the lesson has no body"))
        ok = False
    if not ok:
        return None
    return Lesson(
        key=match["key"],
        number=int(match["number"]),
        path=path,
        subject=subject,
        delay=delay,
        preheader=preheader,
        body=body,
        body_line=body_line,
        version=hashlib.sha256(text.encode("utf-8")).hexdigest()[:12],
    )


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


@contextmanager
def folder_lock(folder: Path, *, exclusive: bool = False) -> Iterator[None]:
    """An advisory lock on a sequence folder: loading takes it shared, and the studio
    (drip.studio.save_path) takes it exclusive while it renames or writes several files, so no
    process ever loads a sequence halfway through a reorder (a reader could skip a lesson)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # no folder (yet): nothing to keep consistent
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def load_sequence(folder: Path, site: Site | None = None) -> tuple[Sequence | None, list[Problem]]:
    """One sequence folder; `site` is what it inherits (site.yaml beside it when not given)."""
    with folder_lock(folder):
        return _load_sequence(folder, site)


def _load_sequence(folder: Path, site: Site | None) -> tuple[Sequence | None, list[Problem]]:
    problems: list[Problem] = []
    if site is None:
        site, _ = load_site(folder.parent)
    if not SLUG.match(folder.name):
        problems.append(
            Problem(folder, 1, "a sequence folder name is lowercase letters, digits and dashes")
        )
        return None, problems
    data = _load_sequence_file(folder / "sequence.yaml", problems)
    if data is None:
        return None, problems
    sequence = _build_sequence(folder, data, problems, site)
    allowed = LESSON_VARIABLES | (MAGNET_VARIABLES if sequence.lead_magnet else frozenset())
    lessons: list[Lesson] = []
    seen: dict[str, Path] = {}
    numbers: dict[int, Path] = {}
    magnet_source = sequence.lead_magnet.source if sequence.lead_magnet else None
    for path in sorted(folder.glob("*.md")):
        if path == magnet_source or path.name.lower() == "readme.md":
            continue
        if inside(path, folder) is None:
            problems.append(Problem(path, 1, OUTSIDE_LESSON))
            continue
        match = LESSON_FILE.match(path.name)
        if not match:
            problems.append(
                Problem(path, 1, "not a lesson file name: use NN-name.md, e.g. 02-small-talk.md")
            )
            continue
        key, number = match["key"], int(match["number"])
        if key in seen:
            problems.append(
                Problem(
                    path,
                    1,
                    f"two lessons named {key!r}: this one and "
                    f"{seen[key].name}; a lesson's name must be unique",
                )
            )
            continue
        if number in numbers:
            problems.append(
                Problem(
                    path, 1, f"two lessons numbered {number}: this one and {numbers[number].name}"
                )
            )
            continue
        seen[key], numbers[number] = path, path
        lesson = _load_lesson(path, match, allowed, problems)
        if lesson is not None:
            lessons.append(lesson)
    if not seen:
        problems.append(Problem(folder / "sequence.yaml", 1, "the sequence has no lessons"))
    lessons.sort(key=lambda lesson: lesson.number)
    return Sequence(**{**sequence.__dict__, "lessons": tuple(lessons)}), problems


def load_sequences(root: Path, author_name: str = "") -> Library:
    """Every sequence under `root`; one with an error is listed in `broken`, not `sequences`.
    `author_name` (DRIP_AUTHOR_NAME) is the author's name where no file gives one. A mistake
    in site.yaml holds every sequence, since each inherits it."""
    sequences: dict[str, Sequence] = {}
    broken: dict[str, list[Problem]] = {}
    held_forms: dict[str, Sequence] = {}
    if not root.is_dir():
        problem = Problem(root, 1, "the sequences folder does not exist (DRIP_SEQUENCES_DIR)")
        return Library({}, [problem], {})
    site, problems = load_site(root, author_name)
    site_errors = [p for p in problems if p.severity == "error"]
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (folder / "sequence.yaml").is_file():
            continue
        sequence, found = load_sequence(folder, site)
        problems.extend(found)
        errors = [*site_errors, *(p for p in found if p.severity == "error")]
        if sequence is not None and not errors:
            sequences[sequence.slug] = sequence
        else:
            broken[folder.name] = errors
            if SLUG.match(folder.name):
                held_forms[folder.name] = sequence or _build_sequence(
                    folder, {"__lines__": {}}, [], site
                )
    _link_chains(sequences, problems)
    problems += unsigned(site, sequences)
    return Library(sequences, problems, broken, held_forms)


def no_sequences(root: Path, library: Library) -> Problem | None:
    """An error when the sequences folder is there but holds no sequence: a wrong or empty
    DRIP_SEQUENCES_DIR would otherwise read as "every sequence reads cleanly"."""
    if library.sequences or library.broken or not root.is_dir():
        return None  # a folder that does not exist is already a problem of load_sequences
    return Problem(
        root,
        1,
        f"no sequences found in {root}: each course is a folder there holding a "
        "sequence.yaml and its lessons (is DRIP_SEQUENCES_DIR the right folder?)",
    )


def unsigned(site: Site, sequences: Mapping[str, Sequence]) -> list[Problem]:
    """A warning at site.yaml while sequences inherit no author name (or a placeholder):
    their lessons would go out signed by nobody, and the guardrails hold real sending."""
    name = site.author.get("name", "")
    inheriting = sorted(slug for slug, s in sequences.items() if s.author.name == name)
    if not inheriting or not is_placeholder(name):
        return []
    what = f"author.name {name!r} is a placeholder" if name else "no author name is set"
    return [
        Problem(
            site.path,
            site.line("author.name"),
            f"{what}, so {', '.join(inheriting)} would go out signed without one: "
            f"set author.name in {SITE_FILE} (every sequence inherits it) or DRIP_AUTHOR_NAME",
            "warning",
        )
    ]


def _link_chains(sequences: dict[str, Sequence], problems: list[Problem]) -> None:
    """Check each `on_complete` names a sequence there is, and tell each course which
    courses enroll into it (its footer says why a reader gets it)."""
    sources: dict[str, list[str]] = {}
    for sequence in sequences.values():
        if sequence.on_complete is None:
            continue
        action, target = sequence.on_complete
        if target not in sequences or target == sequence.slug:
            problems.append(
                Problem(
                    sequence.path / "sequence.yaml",
                    1,
                    f"on_complete.{action}: there is no other sequence "
                    f"{target!r} (known: {', '.join(sorted(sequences))})",
                    "warning",
                )
            )
        elif action == "enroll":
            sources.setdefault(target, []).append(sequence.title)
    for target, titles in sources.items():
        sequences[target] = replace(sequences[target], continues_from=tuple(sorted(titles)))


class ContentStore:
    """Loads sequences once and again only when a file under the folder changes."""

    def __init__(self, root: Path, author_name: str = "") -> None:
        self.root = root
        self.author_name = author_name
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._library: Library | None = None

    def _current_stamp(self) -> tuple[tuple[str, int, int], ...]:
        """Name, mtime and size of every file: one stat each (this runs on every request)."""
        stamp: list[tuple[str, int, int]] = []
        pending = [str(self.root)]
        while pending:
            try:
                entries = list(os.scandir(pending.pop()))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=True):
                    pending.append(entry.path)
                elif entry.is_file(follow_symlinks=True):
                    try:
                        info = entry.stat()
                    except FileNotFoundError:  # deleted since the folder was listed
                        continue
                    stamp.append((entry.path, info.st_mtime_ns, info.st_size))
        return tuple(sorted(stamp))

    def library(self) -> Library:
        stamp = self._current_stamp()
        if self._library is None or stamp != self._stamp:
            self._library = load_sequences(self.root, self.author_name)
            self._stamp = stamp
        return self._library
