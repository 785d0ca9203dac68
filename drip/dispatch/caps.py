"""Caps: how many emails a reader was handed in their day and their week, across every course
and broadcast, and when the next one may go (DRIP_READER_DAILY_CAP, DRIP_READER_WEEKLY_CAP).

What counts is what was handed to the relay for the reader: lessons (`deliveries.sent_at`),
offers (their `offered` event) and broadcast copies (`broadcast_recipients.sent_at`). The
confirmation, its reminder and the download links a reader asked for answer something the
reader just did: never held, never counted. A message over the cap is not dropped: it waits
for the reader's next day (or week), inside its course's send window.

When several messages are waiting for one reader, lessons go first (the course that wrote
to the reader least lately first, so two courses take turns), then offers, then broadcasts:
an offer or a broadcast waits while the reader has a lesson due.

The one sender reads what each reader of a batch of offers or broadcast copies was handed
(`BatchCaps`, two queries a batch, not two a message), counts each hand-off of the batch as
it goes, and asks it right before each hand-off (drip.dispatch.sender); a batch of lessons
is checked in drip.dispatch.lesson_caps.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, func, select, union_all
from sqlalchemy.orm import Session

from drip.content.schedule import into_window
from drip.content.sequences import SendWindow
from drip.core.config import Settings
from drip.store.models import (
    BroadcastRecipient,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    RecipientStatus,
)
from drip.store.queries import among, by_other_index

E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)
R = cast(Table, BroadcastRecipient.__table__)
EVENTS = cast(Table, Event.__table__)
LOOK_BACK = timedelta(days=8)  # covers the start of the week in any zone
Db = Session | Connection


@dataclass(frozen=True)
class Caps:
    daily: int
    weekly: int | None

    @classmethod
    def of(cls, settings: Settings) -> Caps:
        return cls(settings.reader_daily_cap, settings.reader_weekly_cap)


@dataclass(frozen=True)
class Tally:
    """What one reader was handed in the day and the week around `now`, in their zone."""

    day: int
    week: int


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of `day` in `zone`, in UTC (a midnight skipped by DST moves on)."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def _day_start(moment: datetime, zone: ZoneInfo) -> datetime:
    return _midnight(moment.astimezone(zone).date(), zone)


def _week_start(moment: datetime, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone).date()
    return _midnight(local - timedelta(days=local.weekday()), zone)


def handed_off(
    db: Db, subscriber_ids: Collection[int], since: datetime
) -> dict[int, list[datetime]]:
    """The moments each reader was handed a capped message (lesson, offer, broadcast copy)
    since `since`: three index ranges, one per kind, each from the readers' own rows (on
    SQLite, said so: `by_other_index`)."""
    if not subscriber_ids:
        return {}
    ids = sorted(subscriber_ids)
    lessons = (
        select(E.c.subscriber_id, D.c.sent_at.label("at"))
        .join(E, E.c.id == D.c.enrollment_id)
        .where(
            among(db, E.c.subscriber_id, ids),
            by_other_index(db, D.c.status) == DeliveryStatus.SENT,
            by_other_index(db, D.c.sent_at) >= since,
        )
    )
    offers = select(EVENTS.c.subscriber_id, EVENTS.c.at.label("at")).where(
        among(db, EVENTS.c.subscriber_id, ids),
        EVENTS.c.kind == EventKind.OFFERED,
        EVENTS.c.at >= since,
    )
    copies = select(R.c.subscriber_id, R.c.sent_at.label("at")).where(
        among(db, R.c.subscriber_id, ids),
        by_other_index(db, R.c.status) == RecipientStatus.SENT,
        R.c.sent_at >= since,
    )
    found: dict[int, list[datetime]] = {}
    for subscriber_id, at in db.execute(union_all(lessons, offers, copies)):
        found.setdefault(subscriber_id, []).append(aware(at))
    return found


def aware(at: datetime | str) -> datetime:
    """A moment read back through a UNION, which may lose the column's type on SQLite."""
    moment = at if isinstance(at, datetime) else datetime.fromisoformat(at)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def tally(moments: Iterable[datetime], now: datetime, zone: ZoneInfo) -> Tally:
    day, week = _day_start(now, zone), _week_start(now, zone)
    times = list(moments)
    return Tally(sum(1 for t in times if t >= day), sum(1 for t in times if t >= week))


def next_opening(
    now: datetime, zone: ZoneInfo, caps: Caps, counted: Tally, window: SendWindow, ahead: int = 0
) -> datetime | None:
    """None when the reader may be sent one more message at `now` (with `ahead` messages of
    a higher rank still to go before it); else when its next window opens: the next day in
    the reader's zone, or the next week for the weekly cap, moved into `window`."""
    wait: datetime | None = None
    if counted.day + ahead >= caps.daily:
        wait = _day_start(_day_start(now, zone) + timedelta(hours=36), zone)
    if caps.weekly is not None and counted.week + ahead >= caps.weekly:
        wait = _week_start(_week_start(now, zone) + timedelta(days=8), zone)
    return None if wait is None else into_window(wait, window, zone)


def reader_wait(
    db: Db, subscriber_id: int, zone: ZoneInfo, window: SendWindow, now: datetime, caps: Caps
) -> datetime | None:
    """For an offer or a broadcast copy: None if it may go to the reader now; else when to
    look again. The reader's lessons due now rank above it and keep their places."""
    moments = handed_off(db, [subscriber_id], now - LOOK_BACK).get(subscriber_id, [])
    lessons_due = int(
        db.execute(
            select(func.count()).where(
                E.c.subscriber_id == subscriber_id,
                E.c.status == EnrollmentStatus.ACTIVE,
                E.c.due_at <= now,
            )
        ).scalar_one()
    )
    return next_opening(now, zone, caps, tally(moments, now, zone), window, lessons_due)


class BatchCaps:
    """The caps of one batch's readers: read once as the batch starts (`reader_wait`'s two
    queries for all of them), then kept up to date with each hand-off the batch makes.
    A message another worker hands to one of these readers while the batch runs is not seen
    (the same race `reader_wait` has between its read and the hand-off, longer by a batch)."""

    def __init__(self, db: Db, subscriber_ids: Collection[int], now: datetime, caps: Caps):
        self.caps = caps
        ids = sorted(set(subscriber_ids))
        self.moments = handed_off(db, ids, now - LOOK_BACK)
        self.lessons_due: dict[int, int] = {}
        if ids:
            self.lessons_due = {
                subscriber_id: count
                for subscriber_id, count in db.execute(
                    select(E.c.subscriber_id, func.count())
                    .where(
                        among(db, E.c.subscriber_id, ids),
                        E.c.status == EnrollmentStatus.ACTIVE,
                        E.c.due_at <= now,
                    )
                    .group_by(E.c.subscriber_id)
                )
            }

    def wait(
        self, subscriber_id: int, zone: ZoneInfo, window: SendWindow, now: datetime
    ) -> datetime | None:
        """As `reader_wait`: None if a message may go to the reader now, else when."""
        counted = tally(self.moments.get(subscriber_id, []), now, zone)
        ahead = self.lessons_due.get(subscriber_id, 0)
        return next_opening(now, zone, self.caps, counted, window, ahead)

    def handed(self, subscriber_id: int, at: datetime) -> None:
        """One more message handed to the reader at `at`."""
        self.moments.setdefault(subscriber_id, []).append(at)
