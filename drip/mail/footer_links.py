"""The signed links a message's variables stand for, and the pace links of a lesson's footer.

A lesson's footer offers the reader their pace in the course (drip.audience.pace): pause,
slower, the next lesson now, away until a date. Each is a variable of the rendered lesson,
`{{ pace_url("pause") }}`, filled per reader like the unsubscribe link; the link opens a page
with one button (drip.web.public.pace), so a scanner opening it changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drip.content.lessons import TAG_LINK
from drip.mail.links import Links

PACE_URL = "pace_url"
# (choice, what the footer says), in the footer's order
PACE_LINKS = (
    ("pause", "Pause"),
    ("slower", "Slower"),
    ("now", "Next lesson now"),
    ("away", "I'm away"),
)


def footer_tokens(tokenise: Callable[[str], str], *, lesson: bool) -> dict[str, Any]:
    """The footer's links as the layout takes them, each a variable token filled per reader:
    unsubscribe, preferences, and for a lesson the pace links as (label, token)."""
    tokens: dict[str, Any] = {
        "unsubscribe_url": tokenise("{{ unsubscribe_url }}"),
        "preferences_url": tokenise("{{ preferences_url }}"),
    }
    tokens["pace_links"] = [
        (label, tokenise(f'{{{{ {PACE_URL}("{choice}") }}}}'))
        for choice, label in (PACE_LINKS if lesson else ())
    ]
    return tokens


def link_for(name: str, subscriber_id: int, enrollment_id: int, links: Links) -> str:
    """The signed link a variable of a message stands for, for one reader."""
    if name == "unsubscribe_url":
        return links.unsubscribe_url(enrollment_id)
    if name == "preferences_url":
        return links.preferences_url(subscriber_id)
    if name == "lead_magnet_url":
        return links.magnet_url(enrollment_id)
    if name == "confirm_url":
        return links.confirm_url(enrollment_id)
    if name == "offer_url":
        return links.url("offer", enrollment_id)
    if name.startswith(f"{TAG_LINK}:"):
        return links.tag_url(enrollment_id, name.split(":", 1)[1])
    if name.startswith(f"{PACE_URL}:"):
        return links.pace_url(enrollment_id, name.split(":", 1)[1])
    raise KeyError(name)
