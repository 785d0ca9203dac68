"""The guardrail on what comes back: hard-bounce and complaint rates over the newest sends
(verified reports only), and the pause of all sending they trip until an operator resumes it.
While a pause is open the dispatcher claims nothing (`sending_paused`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from drip.core.clock import as_utc
from drip.store.models import BounceEvent, Delivery, SendingPause

log = logging.getLogger(__name__)

GUARD_WINDOW = 1_000  # sends the pause guardrail looks at


GUARD_MINIMUM = 500  # sends the window must hold before the guardrail can trip


@dataclass(frozen=True)
class Rates:
    """Hard bounces and complaints among the newest `sends` deliveries."""

    sends: int
    hard: int
    complaints: int

    @property
    def bounce_rate(self) -> float:
        return self.hard / self.sends if self.sends else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sends if self.sends else 0.0


def rates(session: Session | Connection, window: int, since: datetime | None = None) -> Rates:
    """Rates over the newest `window` sent deliveries (sent after `since`, if given), of
    verified reports only: a forged one must not pause sending."""
    newest = select(Delivery.id).where(Delivery.sent_at.is_not(None))
    if since is not None:
        newest = newest.where(Delivery.sent_at > since)
    ids = newest.order_by(Delivery.sent_at.desc()).limit(window).subquery()
    sends = int(session.scalar(select(func.count()).select_from(ids)) or 0)
    counts: dict[str, int] = {"hard": 0, "complaint": 0}
    for kind, number in session.execute(
        select(BounceEvent.kind, func.count(func.distinct(BounceEvent.delivery_id)))
        .where(BounceEvent.delivery_id.in_(select(ids.c.id)), BounceEvent.verified.is_(True))
        .group_by(BounceEvent.kind)
    ):
        counts[kind] = int(number)
    return Rates(sends, counts["hard"], counts["complaint"])


@dataclass(frozen=True)
class DayRates(Rates):
    """One UTC day: sends, and the hard bounces and complaints reported on it."""

    day: date


def daily_rates(
    session: Session, sends: dict[date, int], first: date, last: date
) -> list[DayRates]:
    """Per day from `first` to `last`: the reports received that day over that day's sends
    (an index range over the reports; the sends come from the daily tallies)."""
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    found: dict[tuple[date, str], int] = {}
    for received_at, kind in session.execute(
        select(BounceEvent.received_at, BounceEvent.kind).where(
            BounceEvent.received_at >= start,
            BounceEvent.received_at < end,
            BounceEvent.kind.in_(["hard", "complaint"]),
        )
    ):
        key = (as_utc(received_at).date(), kind)
        found[key] = found.get(key, 0) + 1
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [
        DayRates(
            sends.get(day, 0), found.get((day, "hard"), 0), found.get((day, "complaint"), 0), day
        )
        for day in days
    ]


def _open_pause(session: Session | Connection) -> tuple[int, str] | None:
    row = session.execute(
        select(SendingPause.id, SendingPause.reason)
        .where(SendingPause.resumed_at.is_(None))
        .order_by(SendingPause.id.desc())
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def event_counts(session: Session) -> dict[tuple[str, str], int]:
    """(kind, matched_by) -> events recorded, for /metrics."""
    return {
        (kind, by): int(n)
        for kind, by, n in session.execute(
            select(BounceEvent.kind, BounceEvent.matched_by, func.count()).group_by(
                BounceEvent.kind, BounceEvent.matched_by
            )
        )
    }


def unverified_reports(session: Session, limit: int = 10) -> tuple[int, list[BounceEvent]]:
    """How many reports named a reader without proving drip sent the message, and the
    newest of them: recorded for the operator to see, applied to nobody."""
    unverified = BounceEvent.subscriber_id.is_not(None) & BounceEvent.verified.is_(False)
    total = int(session.scalar(select(func.count(BounceEvent.id)).where(unverified)) or 0)
    newest = session.scalars(
        select(BounceEvent).where(unverified).order_by(BounceEvent.id.desc()).limit(limit)
    )
    return total, list(newest)


def sending_paused(session: Session | Connection) -> str | None:
    """Why all sending is paused, or None: the dispatcher claims nothing while it is."""
    pause = _open_pause(session)
    return pause[1] if pause else None


def trip_guardrail(
    session: Session, now: datetime, *, complaint_pause: float, bounce_pause: float
) -> str | None:
    """Pause all sending if the last 1,000 sends (since the last resume, so a resumed
    sender is judged on what it sends next) hold too many complaints or hard bounces."""
    if _open_pause(session) is not None:
        return None
    resumed = session.scalar(select(func.max(SendingPause.resumed_at)))
    window = rates(session, GUARD_WINDOW, since=resumed)
    if window.sends < GUARD_MINIMUM:
        return None
    reason = None
    if window.complaint_rate > complaint_pause:
        reason = (
            f"complaint rate {window.complaint_rate:.2%} of the last {window.sends} sends "
            f"is above DRIP_COMPLAINT_PAUSE ({complaint_pause:.2%})"
        )
    elif window.bounce_rate > bounce_pause:
        reason = (
            f"hard-bounce rate {window.bounce_rate:.2%} of the last {window.sends} sends "
            f"is above DRIP_BOUNCE_PAUSE ({bounce_pause:.2%})"
        )
    if reason is None:
        return None
    session.add(SendingPause(paused_at=now, reason=reason))
    log.error("all sending paused: %s; an operator resumes it on the dashboard", reason)
    return reason


def resume_sending(session: Session, now: datetime, operator: str) -> bool:
    """Lift the pause; False if there was none. The caller commits."""
    pause = _open_pause(session)
    if pause is None:
        return False
    session.execute(
        update(SendingPause)
        .where(SendingPause.resumed_at.is_(None))
        .values(resumed_at=now, resumed_by=operator)
    )  # two may have tripped at once
    log.warning("sending resumed by %s (it was paused: %s)", operator, pause[1])
    return True


def status_line(session: Session | Connection) -> str:
    """What `drip status` prints about the guardrail."""
    reason = sending_paused(session)
    if reason is None:
        return "sending: on"
    return f"sending: PAUSED for every sequence ({reason}); resume it on the admin dashboard"
