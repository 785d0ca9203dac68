"""Names made from what an author wrote: a new lesson's file name, a broadcast's name, both
from its subject. Lowercase ASCII letters, digits and dashes, so they are safe in a path and
a URL whatever the subject holds."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

NAME_LENGTH = 40  # characters of a new lesson's name, cut at a dash
BROADCAST_NAME_LENGTH = 60


def name_for(
    subject: str,
    taken: Collection[str] = (),
    *,
    fallback: str = "lesson",
    length: int = NAME_LENGTH,
) -> str:
    """A name from a subject: accents folded ("Über" -> "uber"), every other run of
    characters a dash, at most `length` characters (cut at a dash), unlike every name in
    `taken` (a removed lesson's name stays taken: its readers had it, and would never get a
    new lesson of that name); `fallback` when the subject holds no letter or digit."""
    ascii_text = unicodedata.normalize("NFKD", subject).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or fallback
    if len(words) > length:
        words = words[:length].rsplit("-", 1)[0] or words[:length]
    name, n = words, 2
    while name in taken:
        name, n = f"{words}-{n}", n + 1
    return name


def broadcast_name(subject: str) -> str:
    """A broadcast written in the admin or sent through the API is named for its subject."""
    return name_for(subject, fallback="broadcast", length=BROADCAST_NAME_LENGTH)
