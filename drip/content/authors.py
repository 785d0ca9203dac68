"""Who a course is from: the author's name, credential, photo and blog, and the site's
privacy-policy and after-confirm links.

`sequences/site.yaml` gives them once for every sequence; a sequence's own `author:` (and
`privacy_url`, `after_confirm_url`) overrides them field by field. drip.content.loader reads the
files and turns the messages of `read_author` into `path:line` problems; everything that
shows the author (the From name, the email signature, the sign-up page, the PDF cover) reads
the resolved `Sequence.author`, so there is one answer to "who signs this".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

AUTHOR_KEYS = ("name", "credential", "photo", "url")
SITE_URL_KEYS = ("privacy_url", "after_confirm_url")
PHOTO_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}
# Names a template or an example leaves behind: no lesson goes out signed by one of these.
PLACEHOLDER_NAMES = frozenset(
    {
        "author",
        "dr author",
        "the author",
        "your name",
        "name",
        "jane doe",
        "dr jane doe",
        "john doe",
        "dr john doe",
        "firstname lastname",
        "first last",
        "tbd",
        "todo",
        "changeme",
    }
)


@dataclass(frozen=True)
class Author:
    """What readers see of the author. `photo` is an https URL or the absolute path of an
    image inside the sequences folder (the sign-up page serves it)."""

    name: str = ""
    credential: str = ""
    photo: str = ""
    url: str = ""

    @property
    def photo_file(self) -> Path | None:
        return Path(self.photo) if self.photo.startswith("/") else None

    @property
    def signs(self) -> bool:
        """Whether there is anything to sign with (a name or at least the credential)."""
        return bool(self.name or self.credential)


def is_placeholder(name: str) -> bool:
    """An empty name, or one of the stand-ins templates and examples use ("Dr. Author")."""
    words = re.sub(r"[\W_]+", " ", name.lower()).split()  # "Dr. Author" -> dr author
    return not words or " ".join(words) in PLACEHOLDER_NAMES


def completed_url(value: str) -> str:
    """A web address as typed, with the https:// a browser's address bar would add when it
    starts with a host name (`blog.example.org/about`); anything else as it was."""
    text = value.strip()
    host = text.split("/", 1)[0]
    if "://" in text or not re.fullmatch(r"(?i)[a-z0-9-]+(\.[a-z0-9-]+)+(:\d{1,5})?", host):
        return value
    return f"https://{text}"


def web_url_problem(key: str, value: str) -> str | None:
    """Why `value` cannot be a link readers follow, or None if it can."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            f"{key} must be a web address starting with https://, "
            "e.g. https://blog.example.org/privacy"
        )
    if any(char.isspace() for char in value):
        return f"{key} must not contain spaces"
    return None


def _photo(value: str, folder: Path, root: Path) -> tuple[str, str | None]:
    """(the photo as stored, a problem or None). Relative paths are read from `folder`, the
    folder of the file that names the photo, and must stay inside the sequences folder."""
    address = urlsplit(value)
    if address.scheme:
        if address.scheme != "https" or not address.hostname:
            return "", "author.photo is an https:// address or a file in the sequences folder"
        return value, None
    path = (folder / value).resolve()
    if not path.is_relative_to(root.resolve()):
        return "", f"author.photo {value!r} is outside the sequences folder: put the picture there"
    if path.suffix.lower() not in PHOTO_TYPES:
        kinds = ", ".join(sorted(PHOTO_TYPES))
        return "", f"author.photo {value!r} must be a picture ({kinds})"
    if not path.is_file():
        return "", f"author.photo {value!r} does not exist (looked for {path})"
    return str(path), None


def read_author(raw: Any, folder: Path, root: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The author fields one file gives (only those it names, so the rest are inherited)
    and its mistakes as (key, message), the key naming the line to point at."""
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [("author", "author is a mapping: name, credential, photo, url")]
    fields: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for key, value in raw.items():
        where = f"author.{key}"
        if key not in AUTHOR_KEYS:
            problems.append((where, f"unknown key {where} (allowed: {', '.join(AUTHOR_KEYS)})"))
            continue
        text = "" if value is None else str(value).strip()
        if "\n" in text:
            problems.append((where, f"{where} must be one line"))
            continue
        if text and key == "photo":
            text, problem = _photo(text, folder, root)
            if problem:
                problems.append((where, problem))
                continue
        if text and key == "url" and (problem := web_url_problem(where, text)):
            problems.append((where, problem))
            continue
        fields[key] = text
    return fields, problems


def read_site_urls(data: dict[str, Any]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """`privacy_url` and `after_confirm_url` as one file gives them, and their mistakes."""
    fields: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for key in SITE_URL_KEYS:
        if key not in data:
            continue
        text = "" if data[key] is None else str(data[key]).strip()
        if text and (problem := web_url_problem(key, text)):
            problems.append((key, problem))
            continue
        fields[key] = text
    return fields, problems
