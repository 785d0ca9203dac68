"""Broadcast copies: each reader's copy of a scheduled broadcast, a producer of the one
sender (drip.dispatch.sender), run after the lessons: each reader once (unique row), claimed
as a lease, inside the reader's send window, their status read again right before the
hand-off, with every other guarantee a lesson has. A copy names the reader's own courses
among the broadcast's; a copy whose course cannot be read waits, with the reason on the
broadcast's page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, false, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select, Update

from drip.content.schedule import reader_zone
from drip.content.sequences import Library, Sequence
from drip.dispatch.broadcast_variants import as_sent
from drip.dispatch.broadcast_winner import decide_due
from drip.dispatch.broadcasts import READERS, lesson_key, template_for, unreadable
from drip.dispatch.outcome import Kind, OutcomeStatus
from drip.dispatch.producers import Item, Lease, Settled, claim, write_ahead_ids
from drip.mail.links import Links
from drip.mail.render import MessageTemplate, Renderer
from drip.store.models import (
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    Engagement,
    Enrollment,
    EventKind,
    RecipientStatus,
    Subscriber,
)
from drip.store.queries import among

COPIES = cast(Table, BroadcastRecipient.__table__)
B = cast(Table, Broadcast.__table__)
S = cast(Table, Subscriber.__table__)
E = cast(Table, Enrollment.__table__)
E2 = E.alias("other_enrollments")


def status_read(to: tuple[str, ...]) -> Select[Any]:
    """Read right before each hand-off, for a broadcast to the courses `to`: the broadcast's
    status, the reader's, their enrollment's, and whether any of their enrollments in `to`
    is a reader's; no row: the broadcast is gone. The courses are the statement's own
    constants, so it is compiled once per broadcast (drip.dispatch.hot_path)."""
    in_to = or_(*(E2.c.sequence == course for course in to)) if to else false()
    # Equalities, not IN: an IN list is expanded as the statement runs, never compiled once.
    reader = or_(*(E2.c.status == status for status in READERS["both"]))
    return (
        select(
            B.c.status.label("broadcast_status"),
            S.c.id.label("subscriber"),
            S.c.suppressed_at,
            S.c.broadcasts_off_at,
            S.c.engagement,
            E.c.status.label("enrollment_status"),
            select(E2.c.id)
            .where(E2.c.subscriber_id == S.c.id, in_to, reader)
            .exists()
            .label("wanted"),
        )
        .select_from(
            B.outerjoin(S, S.c.id == bindparam("subscriber")).outerjoin(
                E, (E.c.id == bindparam("enrollment")) & (E.c.subscriber_id == S.c.id)
            )
        )
        .where(B.c.id == bindparam("broadcast"))
    )


# The row marked sent, while the lease is the worker's (drip.dispatch.hot_path).
SENT = (
    update(COPIES)
    .where(COPIES.c.id == bindparam("p_row"), COPIES.c.lease_owner == bindparam("p_me"))
    .values(
        status=RecipientStatus.SENT,
        attempts=bindparam("p_attempts"),
        lease_owner=None,
        last_error=None,
        sent_at=bindparam("p_at", type_=COPIES.c.sent_at.type),
    )
)
OPEN = [RecipientStatus.QUEUED, RecipientStatus.RETRYING, RecipientStatus.SENDING]
STATUS = {
    OutcomeStatus.SENT: RecipientStatus.SENT,
    OutcomeStatus.RETRYING: RecipientStatus.RETRYING,
    OutcomeStatus.HELD: RecipientStatus.QUEUED,
    OutcomeStatus.FAILED: RecipientStatus.FAILED,
    OutcomeStatus.SUPPRESSED: RecipientStatus.FAILED,
    OutcomeStatus.SKIPPED: RecipientStatus.SKIPPED,
}


@dataclass(frozen=True)
class Copy:
    """What a claimed copy carries from its batch's queries (`Item.context`)."""

    broadcast_id: int
    course: Sequence | None  # the course its reader is reported under, if it can be read
    broadcast: Broadcast | None  # None: erased meanwhile
    to: tuple[str, ...]  # the broadcast's courses
    joined: tuple[str, ...]  # those the reader is a reader of (as the audience counts), in order
    variant: str | None = (
        None  # a, b or held: a broadcast's test (drip.dispatch.broadcast_variants)
    )


class BroadcastCopies:
    """The producer of broadcast copies (drip.dispatch.producers.Producer)."""

    kind = Kind.BROADCAST
    sent_event: EventKind | None = (
        None  # the broadcast's page counts them; the timeline keeps the failures
    )
    failed_event = EventKind.NOT_SENT
    capped = True

    def __init__(self, library: Library, renderer: Renderer, links: Links) -> None:
        self.library, self.renderer, self.links = library, renderer, links
        self.templates: dict[tuple[int, tuple[str, ...], str | None], MessageTemplate] = {}
        self.reads: dict[tuple[str, ...], Select[Any]] = {}

    def due(self, session: Session, now: datetime, limit: int, lease: Lease | None) -> list[Item]:
        due = [(COPIES.c.status == status) & (COPIES.c.due_at <= now) for status in OPEN]
        values = {} if lease is None else {"status": RecipientStatus.SENDING}
        if lease is not None:  # broadcast tests: the held readers get the winner first
            decide_due(session, now)
        ids = claim(session, COPIES, due, limit, lease, **values)
        if not ids:
            return []
        rows = list(
            session.execute(
                select(
                    COPIES,
                    Enrollment.sequence,
                    Subscriber.email,
                    Subscriber.first_name,
                    Subscriber.timezone,
                )
                .join(Enrollment, Enrollment.id == COPIES.c.enrollment_id)
                .join(Subscriber, Subscriber.id == COPIES.c.subscriber_id)
                .where(among(session, COPIES.c.id, ids))
                .order_by(COPIES.c.due_at, COPIES.c.id)
            )
        )
        # The batch's broadcasts and its readers' courses, each in one query, not per copy.
        broadcasts = {
            b.id: b
            for b in session.scalars(
                select(Broadcast).where(Broadcast.id.in_({row.broadcast_id for row in rows}))
            )
        }
        courses: dict[int, list[tuple[str, str]]] = {}
        for subscriber_id, sequence, status in session.execute(
            select(E.c.subscriber_id, E.c.sequence, E.c.status).where(
                among(session, E.c.subscriber_id, {row.subscriber_id for row in rows})
            )
        ):
            courses.setdefault(subscriber_id, []).append((sequence, status))
        return [self._item(row, broadcasts, courses) for row in rows]

    def _item(
        self,
        row: Any,
        broadcasts: dict[int, Broadcast],
        courses: dict[int, list[tuple[str, str]]],
    ) -> Item:
        course = self.library.get(row.sequence)
        window = (course.window, reader_zone(row.timezone, course.timezone)) if course else None
        broadcast = broadcasts.get(row.broadcast_id)
        joined: tuple[str, ...] = ()
        to: tuple[str, ...] = ()
        if broadcast is not None:
            to = tuple(broadcast.audience["to"])
            statuses = READERS[broadcast.audience.get("readers", "both")]
            mine = {s for s, status in courses.get(row.subscriber_id, []) if status in statuses}
            joined = tuple(s for s in to if s in mine)
        item = Item(
            row.id,
            row.enrollment_id,
            row.subscriber_id,
            row.email,
            row.first_name or "",
            row.sequence,
            lesson_key(row.broadcast_id),
            row.attempts,
            row.message_id,
            window,
            Copy(row.broadcast_id, course, broadcast, to, joined, row.variant),
        )
        item.extra = {"unsubscribe_url": self.links.stop_url(row.id)}
        return item

    def render(self, session: Session, item: Item) -> str | None:
        """The copy for this reader's own courses among the broadcast's, theirs first."""
        copy: Copy = item.context
        if copy.course is None:
            return unreadable(self.library, (item.sequence,))
        if copy.broadcast is None:
            return None  # why_not says so
        others = [s for s in copy.joined if s != copy.course.slug]
        courses = (copy.course.slug, *others)
        key = (copy.broadcast_id, courses, copy.variant)
        if key not in self.templates:  # as_sent: the reader's variant (a broadcast's test)
            sent = as_sent(copy.broadcast, copy.variant)
            self.templates[key] = template_for(self.renderer, self.library, sent, courses)
        item.template = self.templates[key]
        return None

    def status_read(self, item: Item) -> tuple[Select[Any], dict[str, Any]]:
        copy: Copy = item.context
        if copy.to not in self.reads:
            self.reads[copy.to] = status_read(copy.to)
        params = {
            "broadcast": copy.broadcast_id,
            "subscriber": item.subscriber_id,
            "enrollment": item.enrollment_id,
        }
        return self.reads[copy.to], params

    def verdict(self, item: Item, row: Any) -> str:
        """From one indexed SELECT: the broadcast's status, the reader's and their
        enrollments' (every one whose course the broadcast is to)."""
        return _why_not(row)

    def sent(self) -> Update:
        return SENT

    def write_ahead(self, session: Session, items: list[Item], worker: str) -> None:
        write_ahead_ids(session, COPIES, items, worker)

    def settle(self, session: Session, item: Item, settled: Settled, worker: str) -> bool:
        values: dict[str, object] = {
            "status": STATUS[settled.status],
            "attempts": settled.attempts,
            "lease_owner": None,
        }
        if settled.status is not OutcomeStatus.HELD or settled.error:
            values["last_error"] = settled.error
        if settled.due_at is not None:
            values["due_at"] = settled.due_at
        if settled.status is OutcomeStatus.SENT:
            values["sent_at"] = settled.at
        changed = session.connection().execute(
            update(COPIES)
            .where(COPIES.c.id == item.row_id, COPIES.c.lease_owner == worker)
            .values(**values)
        )
        return bool(getattr(changed, "rowcount", 0))

    def finish(self, session: Session) -> None:
        _finish(session)


def _why_not(row: Any) -> str:
    """From (broadcast's status, reader's id, suppressed_at, broadcasts_off_at, engagement,
    enrollment's status, whether any of their enrollments in the broadcast's courses is a
    reader's), or None when the broadcast is gone: why not to send, or ""."""
    if row is None or row[0] == BroadcastStatus.CANCELLED:
        return "the broadcast was cancelled"
    _, subscriber, suppressed_at, broadcasts_off_at, engagement, enrollment, wanted = row
    if subscriber is None or enrollment is None:
        return "the reader was erased"
    if suppressed_at is not None:
        return "the address is suppressed"
    if broadcasts_off_at is not None:
        return "the reader asked for no more broadcasts"
    if engagement == Engagement.GONE:
        return "the reader is gone: no answer to “Still want these?”"
    if enrollment not in READERS["both"] and not wanted:
        return "the reader left"
    return ""


def _finish(session: Session) -> None:
    """A scheduled broadcast with no recipient left to send is done."""
    open_rows = select(BroadcastRecipient.id).where(
        BroadcastRecipient.broadcast_id == Broadcast.id,
        BroadcastRecipient.status.in_(
            [RecipientStatus.QUEUED, RecipientStatus.SENDING, RecipientStatus.RETRYING]
        ),
    )
    session.execute(
        update(Broadcast)
        .where(Broadcast.status == BroadcastStatus.SCHEDULED, ~exists(open_rows))
        .values(status=BroadcastStatus.DONE)
    )
    session.commit()
