"""Fresh links a reader asked for on a page: queued by the request (`request_magnet_link`),
sent by the one sender of the dispatch pass (`FreshLinks`, a producer: drip.dispatch.sender).

The request only writes a row, so its answer takes the same time whether or not the
address is known, and a slow relay never holds a web worker; the pass sends the email
as it sends every other message and records the outcome on the reader's timeline. A
fresh link goes at any hour: the reader asked and is waiting for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from drip.content.sequences import Library
from drip.dispatch.outcome import Kind
from drip.dispatch.producers import Item, Lease
from drip.dispatch.requested import READER_READ, Requested
from drip.mail.render import Renderer
from drip.store.models import Enrollment, EnrollmentStatus, EventKind, LinkRequest

MAGNET_LINK = "magnet-link"
HAS_MAGNET = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED, EnrollmentStatus.COMPLETED)


def request_magnet_link(session: Session, enrollment: Enrollment, now: datetime) -> bool:
    """Queue a fresh download link for a reader who has the course; False if they have none
    (or one is already queued). The caller commits."""
    if enrollment.status not in HAS_MAGNET or enrollment.subscriber.suppressed_at is not None:
        return False
    queued = session.scalar(
        select(LinkRequest.id).where(
            LinkRequest.enrollment_id == enrollment.id, LinkRequest.kind == MAGNET_LINK
        )
    )
    if queued is not None:
        return False
    session.add(
        LinkRequest(enrollment_id=enrollment.id, kind=MAGNET_LINK, requested_at=now, due_at=now)
    )
    return True


class FreshLinks(Requested):
    """The producer of fresh links (drip.dispatch.producers.Producer)."""

    kind = Kind.FRESH_LINK
    kind_name = MAGNET_LINK
    sent_event: EventKind | None = EventKind.MAGNET_LINK_SENT
    failed_event = EventKind.MAGNET_LINK_FAILED
    capped = False

    def __init__(self, library: Library, renderer: Renderer) -> None:
        self.library, self.renderer = library, renderer

    def due(self, session: Session, now: datetime, limit: int, lease: Lease | None) -> list[Item]:
        return [
            self.item(row, MAGNET_LINK, None)  # at any hour: the reader asked and waits
            for row in self.rows(session, now, limit, lease)
        ]

    def render(self, session: Session, item: Item) -> str | None:
        sequence = self.library.get(item.sequence)
        if sequence is None:
            return self.library.broken_reason(item.sequence) or f"{item.sequence!r} is gone"
        if sequence.lead_magnet is None:
            return None  # why_not says so, and the row goes
        item.template = self.renderer.magnet_link(sequence)
        return None

    def status_read(self, item: Item) -> tuple[Select[Any], dict[str, Any]]:
        return READER_READ, {"enrollment": item.enrollment_id}

    def verdict(self, item: Item, row: Any) -> str:
        """A fresh link goes only to a reader who still has the course and its lead magnet.
        From (enrollment's status, suppressed_at, engagement), or None: the reader is gone."""
        sequence = self.library.get(item.sequence)
        if sequence is None or sequence.lead_magnet is None:
            return "the course has no lead magnet any more"
        if row is None or row[0] not in HAS_MAGNET:
            return "the reader left the course"
        if row[1] is not None:
            return "the address is suppressed"
        return ""
