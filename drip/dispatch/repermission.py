"""The re-permission email: one plain "Still want these?" to a reader gone quiet
(drip.audience.engagement), with a "Keep them coming" button and a "stop them" link, each
opening a page with one button (drip.web.public.engagement).

A producer of the one sender (drip.dispatch.sender): a row of `link_requests`
(`kind = 'repermission'`), queued at the start of a pass inside the reader's send window.
The question is claimed on the reader as it is queued (`repermission_at`), so two workers
never both ask: one email per quiet spell.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from drip.audience.engagement import claim_question, to_ask
from drip.content.schedule import into_window, reader_zone
from drip.content.sequences import Library, Sequence
from drip.core.paths import TEMPLATES
from drip.dispatch.outcome import Kind
from drip.dispatch.producers import Item, Lease
from drip.dispatch.requested import Requested, S
from drip.mail.links import Links
from drip.mail.render import MessageTemplate, Renderer
from drip.store.models import Engagement, EventKind, LinkRequest

LABEL = "repermission"
BATCH = 200


def template(renderer: Renderer, sequence: Sequence) -> MessageTemplate:
    """The email, from templates/email/repermission.md, signed by the course's author."""
    return renderer.from_file(
        sequence,
        TEMPLATES / "email" / "repermission.md",
        LABEL,
        {},
        button=("Keep them coming", "{{ keep_url }}"),
    )


def reader_links(links: Links, enrollment_id: int) -> dict[str, str]:
    """The two signed links of the email: never expire (an old email still answers)."""
    return {
        "keep_url": links.url("keep", enrollment_id),
        "leave_url": links.url("leave", enrollment_id),
    }


def queue_questions(
    session: Session, library: Library, now: datetime, *, dry_run: bool = False
) -> int:
    """Queue the question, due now, for each quiet reader not yet asked whose send window
    is open, the reader claimed as it is queued (the M days to "gone" count from then);
    commits (a dry run queues in the caller's transaction, to list and roll back)."""
    queued = 0
    for enrollment in to_ask(session, library, BATCH):
        sequence = library.sequences[enrollment.sequence]
        zone = reader_zone(enrollment.subscriber.timezone, sequence.timezone)
        if into_window(now, sequence.window, zone) != now:
            continue  # outside their window: a later pass asks
        if not claim_question(session, enrollment.subscriber_id, now):
            continue  # another worker asked, or they acted meanwhile
        session.add(LinkRequest(enrollment_id=enrollment.id, kind=LABEL, requested_at=now))
        queued += 1
        if not dry_run:
            session.commit()
    return queued


# Read right before the hand-off (drip.dispatch.hot_path).
QUIET_READ = select(S.c.id, S.c.engagement, S.c.suppressed_at).where(
    S.c.id == bindparam("subscriber")
)


class Questions(Requested):
    """The producer of re-permission emails (drip.dispatch.producers.Producer)."""

    kind = Kind.REPERMISSION
    kind_name = LABEL
    sent_event: EventKind | None = EventKind.REPERMISSION_SENT
    failed_event = EventKind.NOT_SENT
    capped = False  # it asks whether to go on writing at all

    def __init__(self, library: Library, renderer: Renderer, links: Links) -> None:
        self.library, self.renderer, self.links = library, renderer, links

    def due(self, session: Session, now: datetime, limit: int, lease: Lease | None) -> list[Item]:
        items = []
        for row in self.rows(session, now, limit, lease):
            sequence = self.library.get(row.sequence)
            items.append(self.item(row, LABEL, self.window_of(sequence, row), sequence))
        return items

    def render(self, session: Session, item: Item) -> str | None:
        if item.context is None:
            return (
                self.library.broken_reason(item.sequence) or f"the course {item.sequence!r} is gone"
            )
        item.template = template(self.renderer, item.context)
        item.extra = reader_links(self.links, item.enrollment_id)
        return None

    def status_read(self, item: Item) -> tuple[Select[Any], dict[str, Any]]:
        return QUIET_READ, {"subscriber": item.subscriber_id}

    def verdict(self, item: Item, row: Any) -> str:
        """Asked only of a reader still quiet (one who acted meanwhile is engaged again), at
        an address drip may write to. From (the reader's id, engagement, suppressed_at), or
        None."""
        if row is None or row[2] is not None:
            return "the address is suppressed"
        return "" if row[1] == Engagement.QUIET else "the reader acted meanwhile"
