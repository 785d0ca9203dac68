"""What a broadcast is called where a lesson has its key: the label its Message-ID, its
reply address and its tracked links' clicks are counted under."""

from __future__ import annotations

import re


def lesson_key(broadcast_id: int) -> str:
    """The key of a broadcast among lessons' keys (`broadcast-<id>`)."""
    return f"broadcast-{broadcast_id}"


def broadcast_of(key: str) -> int | None:
    """The broadcast a `lesson_key` names, or None for a lesson's key."""
    found = re.fullmatch(r"broadcast-(\d{1,9})", key)
    return int(found[1]) if found else None
