"""A broadcast as a message: rendered for the readers of some of its courses (the banner and
the footer name those, each title quoted), under the one short List-Id of every broadcast,
its clicks counted under its label (drip.mail.labels)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from drip.content.sequences import Library, Problem, Sequence
from drip.dispatch.broadcast_file import BroadcastError
from drip.mail.labels import lesson_key
from drip.mail.render import MessageTemplate, Renderer, signed_up_for
from drip.store.models import Broadcast


def template_for(
    renderer: Renderer,
    library: Library,
    broadcast: Broadcast,
    courses: tuple[str, ...] = (),
) -> MessageTemplate:
    """The broadcast as the readers of `courses` get it (all its courses in a preview):
    the banner and the footer name those courses only, the footer each title quoted on its
    own; the first gives the sender and link tracking; the List-Id is the same short one for
    every broadcast. Raises BroadcastError when none of the courses can be read."""
    slugs = courses or tuple(broadcast.audience["to"])
    chosen = [library.sequences[s] for s in slugs if s in library.sequences]
    if not chosen:
        raise BroadcastError([Problem(Path(str(broadcast.id)), 1, unreadable(library, slugs))])
    first = chosen[0]
    stand_in: Sequence = dataclasses.replace(
        first,
        slug="broadcasts",
        title=" and ".join(s.title for s in chosen),
        track_links=first.track_links,  # its clicks are the broadcast's (lesson_key)
        track_opens=False,
        continues_from=(),
    )
    version = hashlib.sha256(f"{broadcast.subject}\0{broadcast.body}".encode()).hexdigest()[:12]
    template = renderer.message(
        stand_in,
        lesson_key(broadcast.id),
        version,
        broadcast.subject,
        broadcast.preheader,
        broadcast.body,
        track=True,  # links, where the first sequence tracks them; never an open pixel
        reason=signed_up_for([s.title for s in chosen]),
    )
    return dataclasses.replace(template, list_id=f"<broadcasts.{renderer.domain}>")


def unreadable(library: Library, slugs: tuple[str, ...]) -> str:
    """Why the courses of a copy cannot be read, for the dashboard."""
    return "; ".join(
        library.broken_reason(slug) or f"the course folder {slug!r} is gone" for slug in slugs
    )
