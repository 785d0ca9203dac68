"""The YAML round trip of the settings forms: sequence.yaml and site.yaml read into a form and
written back with the form's values, the author's comments, key order and other keys kept
(ruamel.yaml).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError as RoundTripError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from drip.content.authors import AUTHOR_KEYS, SITE_URL_KEYS
from drip.content.site import SITE_FILE
from drip.core import yaml_input
from drip.studio.outcomes import StudioError


def round_trip() -> YAML:
    handler = YAML()
    handler.width = 4096  # never fold an author's long subject over two lines
    handler.preserve_quotes = True
    return handler


def quoted(value: str) -> DoubleQuotedScalarString:
    """Author text always double-quoted: plain `yes` or `no` would read as true or false."""
    quoted: DoubleQuotedScalarString = DoubleQuotedScalarString(value)
    return quoted


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
    handler = round_trip()
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
            mapping[key] = quoted(value.strip())

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
    handler = round_trip()
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
            mapping[key] = quoted(value)

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
