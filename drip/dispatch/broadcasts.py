"""Broadcasts: one email to the readers of one or more courses, and its life: kept as a
draft, edited, scheduled, cancelled, watched, and the reader's link to stop them.

The broadcast's file and fields are drip.dispatch.broadcast_file, who gets it
drip.dispatch.broadcast_audience, the message drip.dispatch.broadcast_template, its preview
and test send drip.dispatch.broadcast_samples; their names are importable from here too.

Scheduling (`schedule`) writes one recipient row per reader, due at the first opening of
their send window at or after the broadcast's time, in their time zone, with one INSERT ...
SELECT (drip.dispatch.broadcast_schedule); the dispatch pass
sends each reader's copy (drip.dispatch.broadcast_copies) with every guarantee a lesson has. Never
to a reader who left everything, is suppressed, asked for no more broadcasts, never
confirmed, or is gone (drip.audience.engagement).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from drip.audience.leaving import unsubscribe
from drip.content.sequences import Library, Problem
from drip.dispatch.broadcast_audience import audience_count as audience_count
from drip.dispatch.broadcast_audience import audience_query as audience_query
from drip.dispatch.broadcast_audience import segment_ids
from drip.dispatch.broadcast_file import ENGAGEMENT as ENGAGEMENT
from drip.dispatch.broadcast_file import KEYS as KEYS
from drip.dispatch.broadcast_file import READER_WORDS as READER_WORDS
from drip.dispatch.broadcast_file import READERS as READERS
from drip.dispatch.broadcast_file import VARIABLES as VARIABLES
from drip.dispatch.broadcast_file import BroadcastError as BroadcastError
from drip.dispatch.broadcast_file import BroadcastFile as BroadcastFile
from drip.dispatch.broadcast_file import as_file as as_file
from drip.dispatch.broadcast_file import broadcast_from as broadcast_from
from drip.dispatch.broadcast_file import parse_broadcast as parse_broadcast
from drip.dispatch.broadcast_file import read_broadcast as read_broadcast
from drip.dispatch.broadcast_samples import preview as preview
from drip.dispatch.broadcast_samples import send_test as send_test
from drip.dispatch.broadcast_schedule import write_recipients
from drip.dispatch.broadcast_template import template_for as template_for
from drip.dispatch.broadcast_template import unreadable as unreadable
from drip.dispatch.broadcast_variants import split_recipients
from drip.mail.labels import lesson_key as lesson_key
from drip.store.models import (
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    Event,
    EventKind,
    RecipientStatus,
    Subscriber,
)
from drip.store.queries import after_id

HORIZON = timedelta(days=5 * 365)  # a broadcast further ahead is a typo (year 9999)


def parse_when(text: str, zone: str, now: datetime) -> datetime:
    """When to send, from the admin's datetime-local field (a wall-clock time in `zone`) or
    the API's ISO-8601 instant; empty means now. A time in the past is refused, so a slip
    of the date does not send at once to everybody, and one beyond HORIZON too."""
    if not text.strip():
        return now
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(zone or "UTC"))
        at = value.astimezone(UTC)
    except (ValueError, ZoneInfoNotFoundError, OverflowError):
        raise BroadcastError(
            [
                Problem(
                    Path("at"),
                    1,
                    f"{text!r} in {zone!r} is not a time such as 2026-03-03T09:00 in "
                    "an IANA time zone such as America/New_York",
                )
            ]
        ) from None
    if at > now + HORIZON:
        raise BroadcastError(
            [
                Problem(
                    Path("at"),
                    1,
                    f"{at:%Y-%m-%d %H:%M} UTC is more than {HORIZON.days // 365} years ahead; "
                    "schedule it nearer the time",
                )
            ]
        )
    if at < now - timedelta(minutes=1):
        raise BroadcastError(
            [
                Problem(
                    Path("at"),
                    1,
                    f"{at:%Y-%m-%d %H:%M} UTC is in the past; leave it empty to send now",
                )
            ]
        )
    return max(at, now)


def create_draft(session: Session, spec: BroadcastFile, now: datetime, who: str) -> Broadcast:
    """Keep the broadcast, not yet scheduled (the admin's and the API's first step); the
    caller commits."""
    broadcast = Broadcast(
        name=spec.name[:200],
        subject=spec.subject,
        preheader=spec.preheader,
        body=spec.body,
        audience=spec.audience(),
        send_at=now,
        status=BroadcastStatus.DRAFT,
        created_at=now,
        created_by=who[:320],
    )
    session.add(broadcast)
    session.flush()
    return broadcast


def edit_draft(session: Session, broadcast_id: int, spec: BroadcastFile) -> Broadcast:
    """Put a checked spec in place of a draft's text and audience, keeping its name; only
    while it is a draft (a conditional update, so a schedule at the same moment wins
    cleanly). The caller commits."""
    edited = session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status == BroadcastStatus.DRAFT)
        .values(
            subject=spec.subject,
            preheader=spec.preheader,
            body=spec.body,
            audience=spec.audience(),
        )
        .execution_options(synchronize_session=False)
    )
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise BroadcastError([Problem(Path(str(broadcast_id)), 1, "no such broadcast")])
    if getattr(edited, "rowcount", 0) != 1:
        session.refresh(broadcast)
        raise BroadcastError(
            [
                Problem(
                    Path(str(broadcast_id)),
                    1,
                    f"the broadcast is {broadcast.status}, not a draft: only a draft can be edited",
                )
            ]
        )
    session.refresh(broadcast)
    return broadcast


def schedule_draft(
    session: Session, library: Library, broadcast: Broadcast, at: datetime, now: datetime
) -> int:
    """Schedule a draft for `at`: one recipient row per eligible reader of its audience as
    it is now (a segment is evaluated here, once); commits. Returns how many."""
    if broadcast.status != BroadcastStatus.DRAFT:
        where = Path(str(broadcast.id))
        raise BroadcastError(
            [Problem(where, 1, f"the broadcast is {broadcast.status}, not a draft")]
        )
    within = segment_ids(session, broadcast.audience, now)
    claimed = session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast.id, Broadcast.status == BroadcastStatus.DRAFT)
        .values(status=BroadcastStatus.SCHEDULED, send_at=at)
    )
    if getattr(claimed, "rowcount", 0) != 1:  # scheduled twice at once: the first one wins
        session.rollback()
        raise BroadcastError([Problem(Path(str(broadcast.id)), 1, "the broadcast is scheduled")])
    written = write_recipients(
        session, library, broadcast.id, audience_query(broadcast.audience, within), at
    )
    split_recipients(session, broadcast)  # a test's share first (broadcast_variants)
    session.commit()
    session.refresh(broadcast)
    return written


def schedule(
    session: Session,
    library: Library,
    spec: BroadcastFile,
    at: datetime,
    now: datetime,
    who: str = "",
) -> Broadcast:
    """Write the broadcast and one recipient row per eligible reader; commits."""
    broadcast = create_draft(session, spec, now, who)
    schedule_draft(session, library, broadcast, at, now)
    return broadcast


def page_of_broadcasts(
    session: Session, after: int, limit: int
) -> tuple[list[Broadcast], int | None]:
    """Broadcasts oldest first after the id `after`; the next cursor if there are more."""
    return after_id(session, select(Broadcast), Broadcast.id, after, limit)


def cancel(session: Session, broadcast_id: int, now: datetime) -> int:
    """Stop a broadcast: readers whose turn has not come do not get it. Returns how many."""
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise BroadcastError([Problem(Path(str(broadcast_id)), 1, "no such broadcast")])
    if broadcast.status == BroadcastStatus.DONE:
        raise BroadcastError([Problem(Path(str(broadcast_id)), 1, "it has gone out to everyone")])
    broadcast.status, broadcast.cancelled_at = BroadcastStatus.CANCELLED, now
    skipped = session.execute(
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.broadcast_id == broadcast_id,
            BroadcastRecipient.status.in_([RecipientStatus.QUEUED, RecipientStatus.RETRYING]),
        )
        .values(status=RecipientStatus.SKIPPED, last_error="the broadcast was cancelled")
    )
    session.commit()
    return int(getattr(skipped, "rowcount", 0) or 0)


def progress(session: Session, broadcast_id: int) -> Counter[str]:
    """Recipients by status: queued, sending, sent, retrying, failed, skipped."""
    return Counter(
        dict(
            session.execute(
                select(BroadcastRecipient.status, func.count())
                .where(BroadcastRecipient.broadcast_id == broadcast_id)
                .group_by(BroadcastRecipient.status)
            ).all()
        )
    )


def next_due(session: Session, broadcast_id: int) -> datetime | None:
    """When the next waiting copies are due: each reader's due time is the first opening of
    their course's send window at or after the broadcast's time (set when it was scheduled),
    so a broadcast scheduled "now" outside every window sends nothing until the earliest."""
    due: datetime | None = session.scalar(
        select(func.min(BroadcastRecipient.due_at)).where(
            BroadcastRecipient.broadcast_id == broadcast_id,
            BroadcastRecipient.status == RecipientStatus.QUEUED,
        )
    )
    return due


def stop_broadcasts(
    session: Session, recipient_id: int, now: datetime, *, everything: bool, how: str
) -> Subscriber | None:
    """The broadcast's unsubscribe link: no more broadcasts, or leave every course too."""
    row = session.get(BroadcastRecipient, recipient_id)
    subscriber = session.get(Subscriber, row.subscriber_id) if row else None
    if subscriber is None:
        return None
    subscriber.broadcasts_off_at = subscriber.broadcasts_off_at or now
    session.add(
        Event(subscriber_id=subscriber.id, kind=EventKind.BROADCASTS_OFF, at=now, detail=how)
    )
    if everything and row is not None:
        unsubscribe(session, row.enrollment_id, now, everything=True, how=how)
    return subscriber
