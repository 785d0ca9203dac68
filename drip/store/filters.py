"""What the admin's lists are narrowed to (`Filters`: status, sequence, the start of an
address, a tag, a segment), as conditions the database evaluates through its indexes; the
readers list, the delivery log and a bulk action's selection are built from the same ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, false, select
from sqlalchemy.orm import Session

from drip.store.models import (
    Delivery,
    DeliveryStatus,
    Engagement,
    Enrollment,
    EnrollmentStatus,
    Subscriber,
    SubscriberTag,
)


@dataclass(frozen=True)
class Filters:
    """What a list is narrowed to; empty means any."""

    status: str = ""
    sequence: str = ""
    address: str = ""  # the start of an address
    tag: str = ""  # readers with this tag (the readers list only)
    segment: str = ""  # the rows a segment selects (the readers list only), by name
    engagement: str = ""  # engaged, quiet or gone (the readers list only)
    # The segment's conditions, as drip.audience.segments.narrowed resolves them at a moment: a
    # segment's definition lives in the database and its windows ("clicked in the last 30
    # days") depend on the time, neither of which this module knows.
    segment_conditions: tuple[ColumnElement[bool], ...] = field(default=(), compare=False)


def address_prefix(session: Session, column: Any, prefix: str) -> ColumnElement[bool]:
    """Addresses starting with `prefix` (stored lower-case), through an index: LIKE 'abc%'
    on PostgreSQL (the text_pattern_ops index), a range of the plain index on SQLite, whose
    LIKE ignores case and so cannot use one."""
    prefix = prefix.strip().lower()
    if session.get_bind().dialect.name == "postgresql":
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(f"{escaped}%", escape="\\")  # type: ignore[no-any-return]
    if not prefix:
        return column.is_not(None)  # type: ignore[no-any-return]
    return (column >= prefix) & (column < prefix[:-1] + chr(ord(prefix[-1]) + 1))  # type: ignore[no-any-return]


def delivery_log(session: Session, filters: Filters) -> Select[Delivery, Enrollment, Subscriber]:
    """The delivery log, with its reader, filtered by status, sequence and address prefix."""
    statement = (
        select(Delivery, Enrollment, Subscriber)
        .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
    )
    if filters.status:  # a status that does not exist matches nothing (not a 500)
        known = filters.status in set(DeliveryStatus)
        statement = statement.where(Delivery.status == filters.status if known else false())
    if filters.sequence:
        statement = statement.where(Enrollment.sequence == filters.sequence)
    if filters.address:
        statement = statement.where(address_prefix(session, Subscriber.email, filters.address))
    return statement


def reader_conditions(session: Session, filters: Filters) -> list[ColumnElement[bool]]:
    """What the readers list's filters ask of an enrollment and its reader; a tag through
    the (subscriber_id, tag) primary key of subscriber_tags; a segment as its resolved
    conditions (a filter naming a segment that was not resolved is refused, never ignored)."""
    if filters.segment and not filters.segment_conditions:
        raise ValueError(
            f"segment {filters.segment!r}: resolve it with drip.audience.segments.narrowed"
        )
    conditions: list[ColumnElement[bool]] = []
    if filters.status:
        known = filters.status in set(EnrollmentStatus)
        conditions.append(Enrollment.status == filters.status if known else false())
    if filters.sequence:
        conditions.append(Enrollment.sequence == filters.sequence)
    if filters.address:
        conditions.append(address_prefix(session, Subscriber.email, filters.address))
    if filters.tag:
        conditions.append(
            exists().where(
                SubscriberTag.subscriber_id == Enrollment.subscriber_id,
                SubscriberTag.tag == filters.tag,
            )
        )
    if filters.engagement:  # the reader's state, kept on them (drip.audience.engagement)
        known = filters.engagement in set(Engagement)
        conditions.append(Subscriber.engagement == filters.engagement if known else false())
    conditions.extend(filters.segment_conditions)
    return conditions


def reader_list(session: Session, filters: Filters) -> Select[Enrollment, Subscriber]:
    """Enrollments with their reader, filtered by status, sequence, address prefix and tag."""
    return (
        select(Enrollment, Subscriber)
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
        .where(*reader_conditions(session, filters))
    )


def selected_readers(session: Session, filters: Filters) -> Select[int, int]:
    """(enrollment id, subscriber id) of each row the readers list shows for `filters`:
    what a bulk action acts on, evaluated by the database."""
    return (
        select(Enrollment.id, Enrollment.subscriber_id)
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
        .where(*reader_conditions(session, filters))
    )
