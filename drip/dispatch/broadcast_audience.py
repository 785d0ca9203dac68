"""Who gets a broadcast: the readers of its courses (active, finished or both), confirmed,
not suppressed, not off broadcasts, not gone (and engaged unless it says `all`), with one of
its tags, in its segment; one row per reader, asked of the database, never walked in Python."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from drip.audience import segments
from drip.content.sequences import Problem
from drip.dispatch.broadcast_file import READERS, BroadcastError, BroadcastFile
from drip.store.models import Engagement, Enrollment, Subscriber, SubscriberTag


def audience_query(spec: BroadcastFile | dict[str, Any], within: Select[int] | None = None) -> Any:
    """(subscriber id, enrollment id, sequence, time zone) of each eligible reader, one row
    each (their first enrollment among the sequences), among the ids `within` selects (a
    segment) if given: evaluated by the database."""
    audience = spec.audience() if isinstance(spec, BroadcastFile) else spec
    statuses = READERS[audience.get("readers", "both")]
    first = (
        select(Enrollment.subscriber_id, func.min(Enrollment.id).label("enrollment_id"))
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
        .where(
            Enrollment.sequence.in_(audience["to"]),
            Enrollment.status.in_(statuses),
            Enrollment.confirmed_at.is_not(None),
            Subscriber.suppressed_at.is_(None),
            Subscriber.broadcasts_off_at.is_(None),
            Subscriber.engagement != Engagement.GONE,
        )
    )
    if audience.get("engagement") == "engaged":  # older broadcasts, without the key: all
        first = first.where(Subscriber.engagement == Engagement.ENGAGED)
    if audience.get("tags"):
        first = first.where(
            exists().where(
                SubscriberTag.subscriber_id == Subscriber.id,
                SubscriberTag.tag.in_(audience["tags"]),
            )
        )
    if within is not None:
        first = first.where(Subscriber.id.in_(within))
    chosen = first.group_by(Enrollment.subscriber_id).subquery()
    return (
        select(
            chosen.c.subscriber_id,
            chosen.c.enrollment_id,
            Enrollment.sequence,
            Subscriber.timezone,
            Subscriber.email,
        )
        .join(Enrollment, Enrollment.id == chosen.c.enrollment_id)
        .join(Subscriber, Subscriber.id == chosen.c.subscriber_id)
        .order_by(chosen.c.subscriber_id)
    )


def segment_ids(session: Session, audience: dict[str, Any], now: datetime) -> Any:
    """The segment's SELECT of ids, or None; an unknown segment is a BroadcastError."""
    if not audience.get("segment"):
        return None
    try:
        return segments.ids_of(session, audience["segment"], now)
    except segments.SegmentError as error:
        raise BroadcastError([Problem(Path("segment"), 1, p) for p in error.problems]) from None


def audience_count(
    session: Session, spec: BroadcastFile | dict[str, Any], now: datetime
) -> tuple[int, list[str]]:
    """How many readers would get it, and the first few addresses (the dry run): counted
    and limited by the database."""
    audience = spec.audience() if isinstance(spec, BroadcastFile) else spec
    rows = audience_query(audience, segment_ids(session, audience, now)).subquery()
    total = session.scalar(select(func.count()).select_from(rows)) or 0
    first = session.scalars(select(rows.c.email).order_by(rows.c.subscriber_id).limit(5))
    return int(total), list(first)
