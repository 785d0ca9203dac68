"""Bulk actions on the readers a filter of the admin's readers list selects: pause, resume,
move to another sequence, add or remove a tag, erase.

The filter is evaluated by the database (drip.store.filters.selected_readers) and the rows are
walked in batches by enrollment id, so a million readers never sit in Python at once.
Pause, resume and the tags are set-based statements per batch; a move goes through
drip.audience.subscriptions (unsubscribe, subscribe) reader by reader, because the enrollment rules
live there; an erasure goes through drip.audience.readers.erase_readers, the single erasure's path.

`count` says how many rows an action would change (the confirmation page's number) with
the same conditions `step` changes them under, so the two agree.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    distinct,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased, selectinload

from drip.audience.leaving import unsubscribe
from drip.audience.readers import erase_readers
from drip.audience.subscriptions import Consent, subscribe_reader
from drip.audience.tags import EVENTS, TagError, clean_tag, tag_readers, untag_readers
from drip.content.sequences import Library
from drip.core.config import Settings
from drip.store.filters import Filters, selected_readers
from drip.store.models import Enrollment, EnrollmentStatus, Subscriber, SubscriberTag, UTCDateTime

BATCH = 1_000  # enrollments per statement
BUDGET = 2.0  # seconds of work per request; the page goes on from where it stopped
ACTIONS = {
    "pause": "pause",
    "resume": "resume",
    "move": "move",
    "tag": "add the tag",
    "untag": "remove the tag",
    "erase": "erase",
}
PER_READER = frozenset({"move", "tag", "untag", "erase"})  # counted in readers, not rows
MOVABLE = (
    EnrollmentStatus.PENDING,
    EnrollmentStatus.ACTIVE,
    EnrollmentStatus.PAUSED,
    EnrollmentStatus.COMPLETED,
)
LEAVES = (EnrollmentStatus.PENDING, EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)


class BulkError(ValueError):
    """An order that cannot be carried out; the message says which field and why."""


@dataclass(frozen=True)
class Order:
    """One bulk action on the readers `filters` selects; `target` for a move, `tag` for
    the tag actions."""

    action: str
    filters: Filters = field(default_factory=Filters)
    target: str = ""
    tag: str = ""


@dataclass(frozen=True)
class Step:
    """What one batch changed, and the enrollment id to go on after (None: all done; a
    batch short of its size was the last)."""

    changed: int
    after: int | None


def check(order: Order, library: Library) -> Order:
    """The order as it will run, or BulkError saying what is wrong with it."""
    if order.action not in ACTIONS:
        raise BulkError(f"action: {order.action!r} is not one of {', '.join(ACTIONS)}")
    if order.action == "move":
        if order.target not in library.sequences:
            known = ", ".join(sorted(library.sequences)) or "none"
            raise BulkError(f"move to: choose a sequence to move the readers to (known: {known})")
        if order.target == order.filters.sequence:
            raise BulkError(f"move to: these readers are already in {order.target}")
    if order.action in ("tag", "untag"):
        try:
            return Order(order.action, order.filters, tag=clean_tag(order.tag))
        except TagError as error:
            raise BulkError(f"tag: {error}") from None
    return Order(order.action, order.filters, target=order.target if order.action == "move" else "")


def _eligible(order: Order, library: Library) -> ColumnElement[bool]:
    """Of the selected rows, those the action changes."""
    action = order.action
    if action == "pause":
        return Enrollment.status == EnrollmentStatus.ACTIVE
    if action == "resume":
        return (
            (Enrollment.status == EnrollmentStatus.PAUSED)
            & Enrollment.sequence.in_(sorted(library.sequences))
            & Enrollment.next_lesson.is_not(None)
            & Subscriber.suppressed_at.is_(None)  # a bounced address stays blocked
        )
    if action == "move":
        other = aliased(Enrollment)
        return (
            Enrollment.status.in_(MOVABLE)
            & Subscriber.suppressed_at.is_(None)
            & ~exists().where(
                other.subscriber_id == Enrollment.subscriber_id, other.sequence == order.target
            )
        )
    has_tag = exists().where(
        SubscriberTag.subscriber_id == Enrollment.subscriber_id, SubscriberTag.tag == order.tag
    )
    if action == "tag":
        return ~has_tag
    if action == "untag":
        return has_tag
    return Enrollment.id.is_not(None)  # erase: every selected reader


def count(session: Session, library: Library, order: Order) -> int:
    """How many enrollments (pause, resume) or readers (the rest) the order would change."""
    rows = selected_readers(session, order.filters).where(_eligible(order, library)).subquery()
    what: Any = (
        func.count(distinct(rows.c.subscriber_id)) if order.action in PER_READER else func.count()
    )
    return int(session.scalar(select(what).select_from(rows)) or 0)


def step(
    session: Session,
    library: Library,
    settings: Settings,
    order: Order,
    *,
    after: int,
    now: datetime,
    who: str,
    size: int = BATCH,
) -> Step:
    """Carry out the order on the next `size` selected rows after enrollment id `after`,
    and commit them."""
    batch = session.execute(
        selected_readers(session, order.filters)
        .where(_eligible(order, library), Enrollment.id > after)
        .order_by(Enrollment.id)
        .limit(size)
    ).all()
    if not batch:
        return Step(0, None)
    enrollments = [int(e) for e, _ in batch]
    readers = list(dict.fromkeys(int(s) for _, s in batch))
    how = f"bulk, by {who}"
    if order.action == "pause":
        changed = _pause(session, enrollments, now, f"paused by {who} (bulk)")
    elif order.action == "resume":
        changed = _resume(session, enrollments, now, how)
    elif order.action == "move":
        changed = _move(session, library, enrollments, order.target, now, who)
    elif order.action == "tag":
        changed = tag_readers(session, readers, order.tag, now, f"admin ({how})", library)
    elif order.action == "untag":
        changed = untag_readers(session, readers, order.tag, now, f"admin ({how})")
    else:
        changed, _files = erase_readers(session, readers, settings)
    session.commit()
    return Step(changed, enrollments[-1] if len(batch) == size else None)


def _events(session: Session, rows: Collection[Any], kind: str, now: datetime, detail: str) -> None:
    """One timeline entry for each (enrollment id, subscriber id), in one INSERT ... SELECT."""
    if rows:
        session.execute(
            insert(EVENTS).from_select(
                ["subscriber_id", "enrollment_id", "kind", "at", "detail"],
                select(
                    Enrollment.subscriber_id,
                    Enrollment.id,
                    literal(kind, String()),
                    literal(now, UTCDateTime()),
                    literal(detail[:500], String()),
                ).where(Enrollment.id.in_(sorted(e for e, _ in rows))),
            )
        )


def _pause(session: Session, ids: list[int], now: datetime, reason: str) -> int:
    """drip.audience.controls.pause for a batch: active enrollments only."""
    paused = session.execute(
        update(Enrollment)
        .where(Enrollment.id.in_(ids), Enrollment.status == EnrollmentStatus.ACTIVE)
        .values(status=EnrollmentStatus.PAUSED, paused_reason=reason)
        .returning(Enrollment.id, Enrollment.subscriber_id)
        .execution_options(synchronize_session=False)
    ).all()
    _events(session, paused, "paused", now, reason)
    return len(paused)


def _resume(session: Session, ids: list[int], now: datetime, how: str) -> int:
    """drip.audience.controls.resume for a batch: the next lesson due now, the error
    cleared."""
    resumed = session.execute(
        update(Enrollment)
        .where(
            Enrollment.id.in_(ids),
            Enrollment.status == EnrollmentStatus.PAUSED,
            Enrollment.next_lesson.is_not(None),
        )
        .values(
            status=EnrollmentStatus.ACTIVE,
            due_at=now,
            attempts=0,
            last_error=None,
            paused_reason=None,
        )
        .returning(Enrollment.id, Enrollment.subscriber_id)
        .execution_options(synchronize_session=False)
    ).all()
    _events(session, resumed, "resumed", now, how)
    return len(resumed)


def _move(
    session: Session, library: Library, ids: list[int], slug: str, now: datetime, who: str
) -> int:
    """Leave the current course and join `slug` through drip.audience.subscriptions, so its rules
    hold: a confirmed reader starts at once (as a chained course does), an unconfirmed one
    gets the target's confirmation email; nobody already in `slug` is signed up again."""
    target = library.sequences[slug]
    moved = 0
    batch = session.scalars(
        select(Enrollment)
        .where(Enrollment.id.in_(ids))
        .order_by(Enrollment.id)
        .options(selectinload(Enrollment.subscriber).selectinload(Subscriber.enrollments))
    ).all()  # the batch's readers and their courses in three statements, not three each
    for enrollment in batch:
        subscriber = enrollment.subscriber
        if subscriber.suppressed_at is not None or any(
            e.sequence == slug for e in subscriber.enrollments
        ):
            continue  # the same reader twice in one batch
        origin = library.get(enrollment.sequence)
        if enrollment.status in LEAVES:
            unsubscribe(session, enrollment.id, now, how=f"moved to {slug} by {who}")
        subscribe_reader(
            session,
            library,
            subscriber,
            slug,
            now,
            confirmed=enrollment.confirmed_at is not None,
            consent=Consent(
                source=f"moved from {enrollment.sequence} by {who}"[:200],
                text=f"Signed up for “{origin.title if origin else enrollment.sequence}”; "
                f"moved by an operator to “{target.title}”.",
            ),
        )
        moved += 1
    return moved


def run(
    session: Session,
    library: Library,
    settings: Settings,
    order: Order,
    *,
    after: int,
    now: datetime,
    who: str,
    seconds: float | None = None,
    size: int | None = None,
) -> Step:
    """Batches of `step` until the selection is done or `seconds` have gone by (at least one
    batch), so one request stays short however many readers are selected; the caller goes
    on from the returned `after`."""
    deadline = time.monotonic() + (BUDGET if seconds is None else seconds)
    changed = 0
    while True:
        done = step(
            session, library, settings, order, after=after, now=now, who=who, size=size or BATCH
        )
        changed += done.changed
        if done.after is None:
            return Step(changed, None)
        after = done.after
        if time.monotonic() >= deadline:
            return Step(changed, after)


def describe(filters: Filters) -> str:
    """The selection in words, for the confirmation: "of tiny, status active, tagged vip"."""
    parts = [
        f"of {filters.sequence}"
        if filters.sequence
        else ""
        if filters.segment  # the segment says which sequences
        else "of every sequence",
        f"with status {filters.status}" if filters.status else "",
        f"tagged {filters.tag}" if filters.tag else "",
        f"whose address starts with “{filters.address}”" if filters.address else "",
        f"in the segment {filters.segment}" if filters.segment else "",
    ]
    return ", ".join(p for p in parts if p)


def noun(order: Order, number: int) -> str:
    """Readers, or enrollments where a reader in two sequences counts twice."""
    one, many = (
        ("reader", "readers")
        if order.action in PER_READER or order.filters.sequence
        else ("enrollment", "enrollments")
    )
    return f"{number:,} {one if number == 1 else many}"


def sentence(order: Order, number: int, *, done: bool) -> str:
    """ "This will pause 1,234 readers of tiny." before, "Paused 1,234 readers of tiny." after."""
    who = f"{noun(order, number)} {describe(order.filters)}"
    future, past = {
        "pause": (f"pause {who}", f"Paused {who}"),
        "resume": (f"resume {who}", f"Resumed {who}"),
        "move": (f"move {who} to {order.target}", f"Moved {who} to {order.target}"),
        "tag": (f"tag {who} with {order.tag}", f"Tagged {who} with {order.tag}"),
        "untag": (
            f"remove the tag {order.tag} from {who}",
            f"Removed the tag {order.tag} from {who}",
        ),
        "erase": (
            f"erase {who} and everything about them",
            f"Erased {who} and everything about them",
        ),
    }[order.action]
    return f"{past}." if done else f"This will {future}."
