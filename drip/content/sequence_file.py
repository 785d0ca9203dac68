"""A sequence's `sequence.yaml`: its settings checked key by key, each problem at its line."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from drip.content.authors import AUTHOR_KEYS, Author, is_placeholder, read_author
from drip.content.authors import read_site_urls as _read_site_urls
from drip.content.fetch_rule import inside
from drip.content.front_matter import read_or_note
from drip.content.lessons import EXIT_TAG
from drip.content.sequences import LeadMagnet, Problem, SendWindow, Sequence
from drip.content.site import SITE_FILE, Site, key_line
from drip.content.yaml_messages import line_of_keys, yaml_error
from drip.core import yaml_input

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
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
        "pause_on_reply",
        "repermission",
    }
)
WINDOW_KEYS = ("start", "end", "days")
MAGNET_KEYS = ("title", "file", "attach")
DEFAULT_CONSENT = "Yes, send me this email course. I can unsubscribe with one click at any time."


def _unknown_keys(
    raw: dict[str, Any],
    name: str,
    allowed: tuple[str, ...],
    path: Path,
    lines: dict[str, int],
    problems: list[Problem],
) -> None:
    """A problem at its line for each key of the `name` mapping that is not `allowed`."""
    for key in raw:
        if key not in allowed:
            problems.append(
                Problem(
                    path,
                    lines.get(f"{name}.{key}", lines.get(name, 1)),
                    f"unknown key {name}.{key} (allowed: {', '.join(allowed)})",
                )
            )


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
    _unknown_keys(raw, "send_window", WINDOW_KEYS, path, lines, problems)
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


def load_sequence_file(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    text = read_or_note(path, problems)
    if text is None:
        return None
    try:
        data = yaml_input.load(text)
    except yaml.YAMLError as error:
        problems.append(yaml_error(path, error, text=text))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(path, 1, "sequence.yaml must be a mapping of keys to values"))
        return None
    data["__lines__"] = line_of_keys(text)
    return data


def _author(
    site: Site, data: dict[str, Any], path: Path, lines: dict[str, int], problems: list[Problem]
) -> tuple[Author, dict[str, str]]:
    """The sequence's author (site.yaml's, overridden by its own `author:` field by field)
    and its privacy and after-confirm links."""
    own, found = read_author(data.get("author"), path.parent, site.path.parent)
    urls, found_urls = _read_site_urls(data)
    for key, message in [*found, *found_urls]:
        problems.append(Problem(path, key_line(lines, key), message))
    name = own.get("name", "")
    if name and is_placeholder(name):
        problems.append(
            Problem(
                path,
                key_line(lines, "author.name"),
                f"author.name {name!r} is a placeholder: put in the name readers should see",
                "warning",
            )
        )
    # An empty `name:` inherits the site's name rather than unsigning the course; any other
    # field left empty (a guest author without a blog) clears the inherited one.
    merged = {**site.author, **{key: value for key, value in own.items() if value or key != "name"}}
    return Author(**{key: merged.get(key, "") for key in AUTHOR_KEYS}), {**site.urls, **urls}


def build_sequence(
    folder: Path, data: dict[str, Any], problems: list[Problem], site: Site | None = None
) -> Sequence:
    path = folder / "sequence.yaml"
    lines: dict[str, int] = data.pop("__lines__")
    author, urls = _author(site or Site(folder.parent / SITE_FILE), data, path, lines, problems)
    _check_keys(data, path, lines, problems)
    timezone = _timezone(data, path, lines, problems)
    double_opt_in = data.get("double_opt_in", True)
    if not isinstance(double_opt_in, bool):
        problems.append(
            Problem(path, lines.get("double_opt_in", 1), "double_opt_in must be true or false")
        )
        double_opt_in = True
    magnet = _lead_magnet(folder, data, lines, problems)
    fields_raw = _signup_fields(data, path, lines, problems)
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
        repermission=_flag(data, "repermission", path, lines, problems, default=True),
        exit_when=_exit_tag(data.get("exit_when"), path, lines, problems),
        on_complete=_on_complete(data.get("on_complete"), path, lines, problems),
        author=author,
        privacy_url=urls.get("privacy_url", ""),
        after_confirm_url=urls.get("after_confirm_url", ""),
        pause_on_reply=_flag(data, "pause_on_reply", path, lines, problems),
    )


def _check_keys(
    data: dict[str, Any], path: Path, lines: dict[str, int], problems: list[Problem]
) -> None:
    """Unknown keys, a missing title or promise, a promise of more than one line."""
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


def _timezone(
    data: dict[str, Any], path: Path, lines: dict[str, int], problems: list[Problem]
) -> str:
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
    return timezone


def _lead_magnet(
    folder: Path, data: dict[str, Any], lines: dict[str, int], problems: list[Problem]
) -> LeadMagnet | None:
    raw_magnet = data.get("lead_magnet")
    if raw_magnet is None:
        return None
    path = folder / "sequence.yaml"
    line = lines.get("lead_magnet", 1)
    if not isinstance(raw_magnet, dict) or not raw_magnet.get("file"):
        problems.append(Problem(path, line, "lead_magnet needs at least a file"))
        return None
    _unknown_keys(raw_magnet, "lead_magnet", MAGNET_KEYS, path, lines, problems)
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
    return LeadMagnet(
        title=str(raw_magnet.get("title") or data.get("title") or ""),
        source=source,
        attach=bool(raw_magnet.get("attach", False)),
    )


def _signup_fields(
    data: dict[str, Any], path: Path, lines: dict[str, int], problems: list[Problem]
) -> list[Any]:
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
    return fields_raw


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
    data: dict[str, Any],
    key: str,
    path: Path,
    lines: dict[str, int],
    problems: list[Problem],
    default: bool = False,
) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        problems.append(Problem(path, lines.get(key, 1), f"{key} must be true or false"))
        return default
    return value
