"""The "still want the course?" email: the one message a reader gets after pausing a course
for more than 60 days (drip.audience.pace), built like the confirmation from a Markdown file
with front matter (templates/email/still_wanted.md) through the one layout.

Its button is the pace link "next lesson now", which ends the pause from a page with one
button; its footer has the unsubscribe link. Sent by drip.dispatch.still_wanted.
"""

from __future__ import annotations

from drip.content.sequences import Sequence
from drip.core.paths import TEMPLATES
from drip.mail.footer_links import PACE_URL
from drip.mail.render import MessageTemplate, Renderer

STILL_WANTED = "still-wanted"  # the message's key (its name in the outbox and the report)


def still_wanted_message(renderer: Renderer, sequence: Sequence) -> MessageTemplate:
    """The email, rendered once per course and filled in per reader like a confirmation."""
    return renderer.from_file(
        sequence,
        TEMPLATES / "email" / "still_wanted.md",
        STILL_WANTED,
        {"sequence_title": sequence.title},
        button=("Yes, send my next lesson", f'{{{{ {PACE_URL}("now") }}}}'),
    )
