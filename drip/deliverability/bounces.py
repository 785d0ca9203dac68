"""Bounces and complaints, however they arrive (a provider's webhook, the bounce mailbox).

Every message carries what finds its delivery again: its signed Message-ID
(drip.mail.message_ids), and, with `DRIP_BOUNCE_ADDRESS`, a VERP return path whose local part
holds a signed token of the delivery. `record_bounce` matches a reported event by VERP token,
then by Message-ID, then by address, and applies it once, but only when it is verified:
it proves it came from a message drip sent.

- verified: the signed VERP address, or a Message-ID whose HMAC holds under the secret
  key; or a provider's webhook (its signature checked by drip.deliverability.providers) about an
  address drip has sent to. Anyone can write to the bounce mailbox, so a report there
  that names only an address, or a Message-ID drip did not sign, proves nothing.
- an unverified report is stored (`verified` false, shown on the dashboard and the
  reader's page) and logged, and changes nobody; the guardrail does not count it.

What a verified report does:

- hard: the address is suppressed (as a 5xx during the SMTP exchange does);
- soft: counted; `DRIP_SOFT_BOUNCE_LIMIT` in a row with no clean send between suppress;
- complaint: the reader leaves every sequence and the address is suppressed.

An event that matches nothing is stored (matched_by "none"), logged and counted (/metrics
counts events by kind and match), never an error. Hard bounces and complaints also ask the
guardrail: once the last 1,000 sends hold at least 500, a complaint or hard-bounce rate
above its limit pauses all sending (`sending_paused`) until an operator resumes it. It is
asked once for a provider's post of many events, and once for a pass's read of the bounce
mailbox: its rates cost more than recording an event does (bench/PROFILE.md, stop 37).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased, joinedload

from drip.audience.leaving import leave_everything, suppress
from drip.audience.subscriptions import record_event
from drip.core.config import Settings
from drip.deliverability.sending_pause import trip_guardrail
from drip.deliverability.verp import read_verp
from drip.mail.message_ids import read_message_ids
from drip.store.models import (
    BounceEvent,
    BroadcastRecipient,
    Delivery,
    Enrollment,
    EnrollmentStatus,
    EventKind,
    Subscriber,
)

log = logging.getLogger(__name__)

Kind = Literal["hard", "soft", "complaint"]
KINDS: tuple[Kind, ...] = ("hard", "soft", "complaint")


@dataclass(frozen=True)
class Report:
    """One bounce or complaint for one recipient, as a provider or a DSN tells it."""

    kind: Kind
    email: str
    provider: str  # drip, ses, postmark, mailgun, sendgrid, mailbox
    key: str  # unique per event: the provider's event id, or a hash of the report
    source: str = "webhook"  # webhook or mailbox
    message_id: str | None = None  # the Message-ID header of the message that bounced
    return_path: str | None = None  # the envelope sender it went out with (VERP)
    diagnostic: str = ""


@dataclass(frozen=True)
class Policy:
    """What `record_bounce` needs from the settings."""

    secret: str = ""
    fallbacks: tuple[str, ...] = ()  # previous secret keys: mail sent before a rotation
    domain: str = ""  # the host of DRIP_BASE_URL
    soft_limit: int = 3
    complaint_pause: float = 0.003
    bounce_pause: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            secret=settings.secret_key,
            fallbacks=settings.secret_key_fallbacks,
            domain=urlsplit(settings.base_url).hostname or "localhost",
            soft_limit=settings.soft_bounce_limit,
            complaint_pause=settings.complaint_pause,
            bounce_pause=settings.bounce_pause,
        )


@dataclass(frozen=True)
class Recorded:
    """What became of one report: applied, duplicate (already recorded), unmatched, or
    unverified (recorded; it did not prove it came from a message drip sent)."""

    status: Literal["applied", "duplicate", "unmatched", "unverified"]
    outcome: str
    email: str
    guarded: bool = False  # an applied hard bounce or complaint: the guardrail counts it

    def __str__(self) -> str:
        return f"{self.status}: {self.email} ({self.outcome})"


def event_key(provider: str, *parts: object) -> str:
    """A stable key from what identifies an event, hashed so it fits the column."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return f"{provider}:{digest[:48]}"


# -- matching ------------------------------------------------------------------------------------


@dataclass
class _Match:
    by: str
    subscriber: Subscriber | None = None
    enrollment: Enrollment | None = None
    delivery: Delivery | None = None
    verified: bool = False  # proven to come from a message drip sent: it may change a reader


# The matched course's reader and all their courses, in the match's own query: applying a
# report reads them all (suppress, leave), one statement each when loaded lazily.
_READER = joinedload(Enrollment.subscriber).joinedload(Subscriber.enrollments)


def _match(session: Session, report: Report, policy: Policy) -> _Match:
    """VERP token first (signed), then a signed Message-ID, then the address alone (which
    proves something only in a provider's signed webhook, about an address drip mailed)."""
    verp = (
        read_verp(policy.secret, report.return_path, fallbacks=policy.fallbacks)
        if report.return_path
        else None
    )
    if verp is not None:
        kind, ident = verp
        if kind == "d":
            delivery = session.get(
                Delivery, ident, options=[joinedload(Delivery.enrollment).options(_READER)]
            )
            if delivery is not None:
                owner = delivery.enrollment
                return _Match("verp", owner.subscriber, owner, delivery, True)
        else:
            found = session.get(Enrollment, ident, options=[_READER])
            if found is not None:
                return _Match("verp", found.subscriber, found, verified=True)
    for signed in read_message_ids(policy.secret, report.message_id or "", policy.fallbacks):
        enrollment = session.get(Enrollment, signed.enrollment_id, options=[_READER])
        if enrollment is None:
            continue
        delivery = session.scalar(
            select(Delivery).where(
                Delivery.enrollment_id == enrollment.id, Delivery.lesson == signed.label
            )
        )
        return _Match("message-id", enrollment.subscriber, enrollment, delivery, True)
    address = report.email.strip().lower()
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is not None:
        vouched = report.source == "webhook" and _mailed(session, subscriber.id)
        return _Match("address", subscriber, verified=vouched)
    return _Match("none")


def _mailed(session: Session, subscriber_id: int) -> bool:
    """Whether drip has sent this reader anything: a lesson, a confirmation, a broadcast."""
    enrollments = select(Enrollment.id).where(Enrollment.subscriber_id == subscriber_id)
    return bool(
        session.scalar(
            select(
                exists().where(
                    Delivery.enrollment_id.in_(enrollments), Delivery.sent_at.is_not(None)
                )
                | exists().where(
                    Enrollment.subscriber_id == subscriber_id,
                    Enrollment.confirmation_sent_at.is_not(None),
                )
                | exists().where(
                    BroadcastRecipient.subscriber_id == subscriber_id,
                    BroadcastRecipient.sent_at.is_not(None),
                )
            )
        )
    )


# -- applying ------------------------------------------------------------------------------------


def record_bounce(
    session: Session,
    report: Report,
    now: datetime,
    policy: Policy | None = None,
    *,
    guard: bool = True,
) -> Recorded:
    """Match and apply one event, once: a second report with the same key changes nothing.
    The caller commits. The same event recorded meanwhile by another transaction raises
    IntegrityError (the unique key); rolled back and run again, it is found a duplicate.
    (No savepoint: on SQLite, pysqlite would commit at its release.)"""
    policy = policy or Policy()
    if session.scalar(select(BounceEvent.id).where(BounceEvent.key == report.key)) is not None:
        return Recorded("duplicate", "already recorded", report.email)
    match = _match(session, report, policy)
    row = BounceEvent(
        key=report.key,
        received_at=now,
        source=report.source,
        provider=report.provider,
        kind=report.kind,
        email=report.email[:320],
        subscriber_id=match.subscriber.id if match.subscriber else None,
        enrollment_id=match.enrollment.id if match.enrollment else None,
        delivery_id=match.delivery.id if match.delivery else None,
        matched_by=match.by,
        outcome="unmatched",
        diagnostic=report.diagnostic[:2000],
        verified=match.verified,
    )
    session.add(row)
    session.flush()
    if match.subscriber is not None and not match.verified:
        row.outcome = "unverified: changed nobody"
        log.warning(
            "%s report from %s for %s matches by %s only, which does not prove drip sent "
            "the message (no signed return path nor Message-ID): recorded, nothing changed",
            report.kind,
            report.provider,
            report.email,
            match.by,
        )
        return Recorded("unverified", row.outcome, report.email)
    if match.subscriber is None:
        log.warning(
            "%s %s from %s for %s matches no delivery nor reader: recorded, nothing to do",
            report.kind,
            "report",
            report.provider,
            report.email,
        )
        return Recorded("unmatched", "no delivery nor reader", report.email)
    row.outcome = _apply(session, report, match, now, policy)
    recorded = Recorded("applied", row.outcome, report.email, guarded=report.kind != "soft")
    if guard:
        ask_guardrail(session, [recorded], now, policy)
    return recorded


def ask_guardrail(
    session: Session, recorded: Iterable[Recorded], now: datetime, policy: Policy
) -> str | None:
    """Pause all sending if these events took a rate over its limit (see the module's
    docstring); only an applied hard bounce or complaint can. Why it paused, or None."""
    if not any(r.guarded for r in recorded):
        return None
    return trip_guardrail(
        session, now, complaint_pause=policy.complaint_pause, bounce_pause=policy.bounce_pause
    )


def _label(report: Report) -> str:
    words = {"hard": "hard bounce", "soft": "soft bounce", "complaint": "spam complaint"}
    text = f"{words[report.kind]} ({report.provider}"
    text += ", bounce mailbox)" if report.source == "mailbox" else ")"
    return f"{text}: {report.diagnostic}" if report.diagnostic else text


def _apply(session: Session, report: Report, match: _Match, now: datetime, policy: Policy) -> str:
    subscriber = match.subscriber
    assert subscriber is not None
    label = _label(report)
    if match.delivery is not None:
        match.delivery.last_error = label[:2000]
        match.delivery.updated_at = now
    kind = {
        "hard": EventKind.BOUNCED,
        "soft": EventKind.SOFT_BOUNCE,
        "complaint": EventKind.COMPLAINED,
    }[report.kind]
    for enrollment in _timeline_targets(subscriber, match.enrollment):
        record_event(session, enrollment, kind, now, f"{label} · matched by {match.by}")
    if report.kind == "complaint":
        leave_everything(session, subscriber, now, "spam complaint", reason=label)
        _suppress(session, subscriber, now, label)
        return "unsubscribed and suppressed"
    if report.kind == "hard":
        _suppress(session, subscriber, now, label)
        return "suppressed"
    streak = soft_streak(session, subscriber.id)
    if streak >= policy.soft_limit:
        _suppress(session, subscriber, now, f"{streak} soft bounces in a row; last: {label}")
        return f"suppressed after {streak} soft bounces in a row"
    return f"soft bounce {streak} of {policy.soft_limit}"


def _timeline_targets(
    subscriber: Subscriber,
    enrollment: Enrollment | None,
) -> list[Enrollment]:
    """The timeline is per enrollment: the one that bounced, or every one of the reader's."""
    if enrollment is not None:
        return [enrollment]
    return list(subscriber.enrollments)


def _suppress(session: Session, subscriber: Subscriber, now: datetime, reason: str) -> None:
    if subscriber.suppressed_at is None:
        suppress(session, subscriber, now, reason)
        session.execute(
            update(Enrollment)
            .where(
                Enrollment.subscriber_id == subscriber.id,
                Enrollment.status == EnrollmentStatus.SUPPRESSED,
            )
            .values(last_error=reason)
        )


def soft_streak(session: Session, subscriber_id: int) -> int:
    """Soft bounces since the reader's last clean send (a sent delivery no bounce names).

    Counted in the query rather than kept in a column, so the dispatcher need not reset a
    counter on every send: a soft bounce counts when its delivery went out after the last
    clean one (or, matched by address only, when it arrived after it)."""
    sent, echo = aliased(Delivery), aliased(BounceEvent)  # the subquery's own, uncorrelated
    last_clean = (
        select(func.max(sent.sent_at))
        .join(Enrollment, Enrollment.id == sent.enrollment_id)
        .where(
            Enrollment.subscriber_id == subscriber_id,
            sent.sent_at.is_not(None),
            ~exists().where(echo.delivery_id == sent.id),
        )
        .scalar_subquery()
    )
    query = (
        select(func.count(BounceEvent.id))
        .outerjoin(Delivery, Delivery.id == BounceEvent.delivery_id)
        .where(
            BounceEvent.subscriber_id == subscriber_id,
            BounceEvent.kind == "soft",
            BounceEvent.verified.is_(True),
            or_(
                last_clean.is_(None),
                and_(BounceEvent.delivery_id.is_not(None), Delivery.sent_at > last_clean),
                and_(BounceEvent.delivery_id.is_(None), BounceEvent.received_at > last_clean),
            ),
        )
    )
    return int(session.scalar(query) or 0)


def record_all(
    session: Session,
    reports: Iterable[Report],
    now: datetime,
    policy: Policy,
    *,
    guard: bool = True,
) -> list[Recorded]:
    """Record several events in one transaction, then ask the guardrail once (unless not
    `guard`: the caller asks, with `ask_guardrail`, after more of them); the caller commits."""
    recorded = [record_bounce(session, report, now, policy, guard=False) for report in reports]
    if guard:
        ask_guardrail(session, recorded, now, policy)
    return recorded
