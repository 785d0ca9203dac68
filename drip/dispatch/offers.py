"""Course offers (`on_complete: {offer: <slug>}`) as a producer of the one sender
(drip.dispatch.sender): each is a row of `link_requests` (`kind = 'offer'`) queued when the
reader finishes the course (drip.dispatch.chaining), due at the first opening of that
course's send window in the reader's zone, and handed over like every other message."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from drip.content.sequences import Library, Sequence
from drip.dispatch.outcome import Kind
from drip.dispatch.producers import Item, Lease
from drip.dispatch.requested import READER_READ, Requested, S
from drip.mail.render import Renderer
from drip.store.models import Engagement, Enrollment, EnrollmentStatus, EventKind

OFFER = "offer"
E2 = cast(Table, Enrollment.__table__).alias("next_course")


def offered(library: Library, slug: str) -> tuple[Sequence, Sequence] | None:
    """The course `slug` and the one it offers when finished, if both can be read."""
    finished = library.get(slug)
    if finished is None or finished.on_complete is None or finished.on_complete[0] != OFFER:
        return None
    target = library.get(finished.on_complete[1])
    return None if target is None else (finished, target)


class Offers(Requested):
    """The producer of course offers (drip.dispatch.producers.Producer)."""

    kind = Kind.OFFER
    kind_name = OFFER
    sent_event: EventKind | None = EventKind.OFFERED
    failed_event = EventKind.OFFER_FAILED
    capped = True

    def __init__(self, library: Library, renderer: Renderer) -> None:
        self.library, self.renderer = library, renderer
        self.reads: dict[str, Select[Any]] = {}

    def due(self, session: Session, now: datetime, limit: int, lease: Lease | None) -> list[Item]:
        items = []
        for row in self.rows(session, now, limit, lease):
            courses = offered(self.library, row.sequence)
            target = courses[1].slug if courses else "unknown"
            window = self.window_of(courses[0] if courses else None, row)
            items.append(self.item(row, f"offer-{target}", window, courses))
        return items

    def render(self, session: Session, item: Item) -> str | None:
        if item.context is None:
            finished = self.library.get(item.sequence)
            if finished is not None and finished.on_complete is None:
                return None  # no offer any more: why_not says so, and the row goes
            slug = finished.on_complete[1] if finished and finished.on_complete else item.sequence
            return self.library.broken_reason(slug) or f"the course {slug!r} is gone"
        finished, target = item.context
        item.template = self.renderer.offer(finished, target)
        return None

    def status_read(self, item: Item) -> tuple[Select[Any], dict[str, Any]]:
        """One read: the reader's enrollment and address, and whether they are in the next
        course already (its slug a constant of the statement, compiled once per course)."""
        target = item.context[1].slug if item.context is not None else ""
        if target not in self.reads:
            joined = select(E2.c.id).where(E2.c.subscriber_id == S.c.id, E2.c.sequence == target)
            self.reads[target] = READER_READ.add_columns(joined.exists().label("joined"))
        return self.reads[target], {"enrollment": item.enrollment_id}

    def verdict(self, item: Item, row: Any) -> str:
        """An offer goes to a reader who finished the course, may be written to, and is not
        in the next course yet. From (enrollment's status, suppressed_at, engagement, in
        the next course), or None when the reader is gone."""
        if item.context is None:
            return "the course offers no other any more"
        if row is None or row[0] != EnrollmentStatus.COMPLETED:
            return "the reader left"
        if row[1] is not None:
            return "the address is suppressed"
        if row[2] == Engagement.GONE:
            return "the reader is gone: no answer to \u201cStill want these?\u201d"
        return "the reader is in the next course already" if row[3] else ""
