"""`sequences/site.yaml`: the author and links every sequence inherits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from drip.content.authors import SITE_URL_KEYS, is_placeholder, read_author
from drip.content.authors import read_site_urls as _read_site_urls
from drip.content.sequences import EngagementRules, Problem, Sequence
from drip.content.yaml_messages import line_of_keys, yaml_error
from drip.core import yaml_input

SITE_FILE = "site.yaml"  # sequences/site.yaml: what every sequence inherits
SITE_KEYS = frozenset({"author", "forward_replies_to", "engagement", *SITE_URL_KEYS})
ENGAGEMENT_KEYS = {"quiet_after": (6, 1, 100), "gone_after_days": (30, 1, 365)}  # default, range


@dataclass(frozen=True)
class Site:
    """What `sequences/site.yaml` gives every sequence, with DRIP_AUTHOR_NAME as the name
    where no file gives one."""

    path: Path
    author: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    forward_replies_to: str = ""  # readers' replies are forwarded here (drip.replies.forward)
    engagement: EngagementRules = field(default_factory=EngagementRules)

    def line(self, key: str) -> int:
        return key_line(self.lines, key)


def key_line(lines: dict[str, int], key: str) -> int:
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
        return Site(path, defaults), [yaml_error(path, error, text=text)]
    if not isinstance(data, dict):
        return Site(path, defaults), [
            Problem(path, 1, "site.yaml must be a mapping of keys to values")
        ]
    lines = line_of_keys(text)
    for key in data:
        if key not in SITE_KEYS:
            allowed = ", ".join(sorted(SITE_KEYS))
            problems.append(
                Problem(path, lines.get(key, 1), f"unknown key {key!r} (allowed: {allowed})")
            )
    author, found = read_author(data.get("author"), root, root)
    urls, found_urls = _read_site_urls(data)
    for key, message in [*found, *found_urls]:
        problems.append(Problem(path, key_line(lines, key), message))
    named = author.get("name", "")
    if author_name and named and named != author_name:
        problems.append(
            Problem(
                path,
                key_line(lines, "author.name"),
                f"DRIP_AUTHOR_NAME ({author_name!r}) and author.name ({named!r}) differ; "
                "the file's name is used: drop one of them",
                "warning",
            )
        )
    if not named:  # an empty name in the file leaves DRIP_AUTHOR_NAME's in place
        author.pop("name", None)
    forward = _forward_to(data.get("forward_replies_to"), path, lines, problems)
    rules = _engagement(data.get("engagement"), path, lines, problems)
    return Site(path, {**defaults, **author}, urls, lines, forward, rules), problems


def _forward_to(value: object, path: Path, lines: dict[str, int], problems: list[Problem]) -> str:
    """`forward_replies_to`: one plain address, or nothing."""
    text = "" if value is None else str(value).strip()
    local, at, domain = text.rpartition("@")
    if text and not (at and local and "." in domain and not set(text) & set(' ,;<>"\r\n')):
        problems.append(
            Problem(
                path,
                lines.get("forward_replies_to", 1),
                f"forward_replies_to must be one email address such as you@example.org, "
                f"got {text!r}",
            )
        )
        return ""
    return text


def _engagement(
    raw: object, path: Path, lines: dict[str, int], problems: list[Problem]
) -> EngagementRules:
    """`engagement: {quiet_after: 6, gone_after_days: 30}`, each a whole number in range."""
    if raw is None:
        return EngagementRules()
    if not isinstance(raw, dict):
        problems.append(
            Problem(
                path, key_line(lines, "engagement"), "engagement: quiet_after and gone_after_days"
            )
        )
        return EngagementRules()
    values: dict[str, int] = {}
    for key in sorted(set(raw) - set(ENGAGEMENT_KEYS)):
        allowed = ", ".join(ENGAGEMENT_KEYS)
        problems.append(
            Problem(
                path, key_line(lines, "engagement"), f"engagement: unknown key {key!r} ({allowed})"
            )
        )
    for key, (default, low, high) in ENGAGEMENT_KEYS.items():
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            where = key_line(lines, f"engagement.{key}")
            problems.append(
                Problem(path, where, f"engagement.{key} is a whole number from {low} to {high}")
            )
            value = default
        values[key] = value
    return EngagementRules(**values)


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
