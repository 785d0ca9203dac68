"""One-off messages to one reader as rows of `link_requests` (a fresh link, a course offer):
claimed, written ahead and settled the same way, so each producer of them only says what it
renders and who still wants it (drip.dispatch.fresh_links, drip.dispatch.offers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Delete

from drip.content.schedule import into_window, reader_zone
from drip.content.sequences import Sequence
from drip.dispatch.outcome import OutcomeStatus
from drip.dispatch.producers import Item, Lease, Settled, Window, claim, write_ahead_ids
from drip.store.models import Enrollment, LinkRequest, Subscriber

REQUESTS = cast(Table, LinkRequest.__table__)
E = cast(Table, Enrollment.__table__)
S = cast(Table, Subscriber.__table__)
AGAIN = (OutcomeStatus.RETRYING, OutcomeStatus.HELD)  # the row stays, due again later
# A message handed over is done with: its row goes, while the lease is the worker's
# (drip.dispatch.hot_path; the timeline keeps the sent event).
SENT = delete(REQUESTS).where(
    REQUESTS.c.id == bindparam("p_row"), REQUESTS.c.lease_owner == bindparam("p_me")
)
# The reader's enrollment and address, read right before the hand-off.
READER_READ = (
    select(E.c.status.label("enrollment_status"), S.c.suppressed_at, S.c.engagement)
    .join(S, S.c.id == E.c.subscriber_id)
    .where(E.c.id == bindparam("enrollment"))
)


class Requested:
    """The rows of one `kind` of `link_requests`; subclasses make their items."""

    kind_name: str

    @staticmethod
    def sent() -> Delete:
        return SENT

    @staticmethod
    def item(row: Any, label: str, window: Window | None, context: Any = None) -> Item:
        """A claimed row (`rows`) as the sender's item."""
        return Item(
            row.id,
            row.enrollment_id,
            row.subscriber_id,
            row.email,
            row.first_name or "",
            row.sequence,
            label,
            row.attempts,
            row.message_id,
            window,
            context,
        )

    @staticmethod
    def window_of(course: Sequence | None, row: Any) -> Window | None:
        """The course's send window in the row's reader's zone (None: the course is gone)."""
        return (course.window, reader_zone(row.timezone, course.timezone)) if course else None

    def rows(self, session: Session, now: datetime, limit: int, lease: Lease | None) -> list[Any]:
        """The due rows with their readers, leased to `lease` (None: read only)."""
        due = (REQUESTS.c.kind == self.kind_name) & (REQUESTS.c.due_at <= now)
        ids = claim(session, REQUESTS, [due], limit, lease)
        if not ids:
            return []
        return list(
            session.execute(
                select(
                    REQUESTS.c.id,
                    REQUESTS.c.enrollment_id,
                    REQUESTS.c.attempts,
                    REQUESTS.c.message_id,
                    E.c.sequence,
                    E.c.subscriber_id,
                    S.c.email,
                    S.c.first_name,
                    S.c.timezone,
                )
                .join(E, E.c.id == REQUESTS.c.enrollment_id)
                .join(S, S.c.id == E.c.subscriber_id)
                .where(REQUESTS.c.id.in_(ids))
                .order_by(REQUESTS.c.due_at, REQUESTS.c.id)
            )
        )

    def write_ahead(self, session: Session, items: list[Item], worker: str) -> None:
        write_ahead_ids(session, REQUESTS, items, worker)

    def settle(self, session: Session, item: Item, settled: Settled, worker: str) -> bool:
        """A message sent, failed for good or no longer wanted is done with: its row goes
        (the timeline keeps what became of it); one tried again waits, with its attempts."""
        mine = (REQUESTS.c.id == item.row_id) & (REQUESTS.c.lease_owner == worker)
        if settled.status in AGAIN:
            changed = session.execute(
                update(REQUESTS)
                .where(mine)
                .values(
                    attempts=settled.attempts,
                    last_error=settled.error,
                    due_at=settled.due_at,
                    lease_owner=None,
                )
            )
        else:
            changed = session.execute(delete(REQUESTS).where(mine))
        return bool(getattr(changed, "rowcount", 0))

    def finish(self, session: Session) -> None:
        return None


def queue_in_window(
    session: Session, enrollment: Enrollment, kind: str, sequence: Sequence, now: datetime
) -> None:
    """A one-off message to `enrollment`'s reader queued as a row, due when their send
    window (the sequence's, in the reader's zone) next opens."""
    zone = reader_zone(enrollment.subscriber.timezone, sequence.timezone)
    session.add(
        LinkRequest(
            enrollment_id=enrollment.id,
            kind=kind,
            requested_at=now,
            due_at=into_window(now, sequence.window, zone),
        )
    )
