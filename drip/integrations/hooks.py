"""Webhooks to the blog's other tools: when a reader joins, confirms, gets a lesson,
finishes a course, leaves, bounces or complains, each endpoint that asked for that event
gets a signed JSON POST.

The relay (`collect`) reads what already happened from the tables the engine writes
anyway (the timeline's events, sent deliveries), so the dispatcher's hot path writes
nothing extra; each event becomes a `webhook_deliveries` row, unique per endpoint and
event, so reading the same thing twice queues it once. The sender (`deliver`) POSTs the
rows in order per reader, retrying with backoff for a day; it runs as its own scheduled
job, so a dead endpoint never slows the lessons.

Signed as Stripe signs: `Drip-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>" with the endpoint's secret>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from drip.core.clock import as_utc
from drip.integrations.outgoing import (
    Answer,
    Reach,
    Unresolved,
    UrlError,
    check_url,
    pick_address,
    post,
)
from drip.store.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    Subscriber,
    WebhookCursor,
    WebhookDelivery,
    WebhookEndpoint,
)

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "subscriber.created",
    "subscriber.confirmed",
    "lesson.sent",
    "sequence.completed",
    "subscriber.unsubscribed",
    "delivery.bounced",
    "delivery.complained",
    "link.clicked",
    "reader.replied",
)
# Timeline kinds and the event each one is.
FROM_KIND = {
    "created": "subscriber.created",
    "signed_up": "subscriber.created",
    "confirmed": "subscriber.confirmed",
    "unsubscribed": "subscriber.unsubscribed",
    "bounced": "delivery.bounced",
    "suppressed": "delivery.bounced",
    "complained": "delivery.complained",
    "clicked": "link.clicked",
    "replied": "reader.replied",  # a signed reply (drip.replies); detail "<lesson>: <subject>"
}
SMTP_REFUSAL = re.compile(r"^5\d\d\b")  # a suppression for the relay's permanent refusal
FINAL = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED)
SCAN = 5000  # rows read per source and run
# Events are read again this far behind the cursor: on PostgreSQL a transaction that took
# its ids earlier may commit after a later one; the unique key drops what was queued before.
OVERLAP = 200
BATCH = 100  # POSTs per run
GIVE_UP_AFTER = timedelta(days=1)
TIMEOUT = 5  # seconds per POST
STRICT = Reach()  # public addresses only, the system's resolver


class HookError(ValueError):
    """An endpoint that cannot be added; the message says why."""


@dataclass(frozen=True)
class Found:
    """Something that happened, ready to be queued for every endpoint that wants it."""

    key: str
    type: str
    at: datetime
    subscriber_id: int | None
    data: dict[str, Any]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def add_endpoint(
    session: Session,
    url: str,
    events: list[str],
    now: datetime,
    *,
    allow_private: bool = False,
    reach: Reach = STRICT,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (shown once). The caller commits. The URL's
    shape and the addresses its host has now are checked here; delivery checks again."""
    try:
        target = check_url(url)
    except UrlError as error:
        raise HookError(str(error)) from None
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown or not events:
        raise HookError(f"unknown events {unknown or events} (known: {', '.join(EVENT_TYPES)})")
    try:
        pick_address(target, reach, private_network=allow_private)
    except Unresolved:
        pass  # no address now: delivery checks the one it has then
    except UrlError as error:
        advice = (
            ""
            if allow_private
            else "; add it with --allow-private if you really mean an endpoint on your own "
            "private network (never loopback or link-local)"
        )
        raise HookError(f"{error}{advice}") from None
    secret = "whsec_" + secrets.token_urlsafe(24)
    endpoint = WebhookEndpoint(
        url=url, events=",".join(events), secret=secret, allow_private=allow_private, created_at=now
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.removed_at.is_(None))
            .order_by(WebhookEndpoint.id)
        )
    )


def _cursor(session: Session, source: str) -> WebhookCursor:
    row = session.get(WebhookCursor, source)
    if row is None:
        row = WebhookCursor(source=source, position=0)
        session.add(row)
    return row


def _reader(subscriber: Subscriber | None) -> dict[str, Any]:
    return {"id": subscriber.id, "email": subscriber.email} if subscriber else {}


def _from_events(session: Session) -> list[Found]:
    cursor = _cursor(session, "events")
    rows = session.execute(
        select(Event, Enrollment.sequence)
        .outerjoin(Enrollment, Enrollment.id == Event.enrollment_id)
        .where(Event.id > cursor.position - OVERLAP, Event.kind.in_(list(FROM_KIND)))
        .order_by(Event.id)
        .limit(SCAN)
    ).all()
    found = []
    people = {
        s.id: s
        for s in session.scalars(
            select(Subscriber).where(Subscriber.id.in_({event.subscriber_id for event, _ in rows}))
        )
    }
    reported = {
        (event.subscriber_id, event.at)
        for event, _ in rows
        if event.kind in ("bounced", "complained")
    }
    for event, sequence in rows:
        if event.kind == "signed_up" and event.detail.startswith("again"):
            continue  # a returning reader is not a new one
        if event.kind == "suppressed" and (
            (event.subscriber_id, event.at) in reported or not SMTP_REFUSAL.match(event.detail)
        ):
            continue  # the provider's report is the event; an operator's block is none
        found.append(
            Found(
                f"event:{event.id}",
                FROM_KIND[event.kind],
                as_utc(event.at),
                event.subscriber_id,
                {
                    "reader": _reader(people.get(event.subscriber_id)),
                    "sequence": sequence,
                    "detail": event.detail,
                },
            )
        )
    last = session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
    if rows:
        cursor.position = rows[-1][0].id
    elif last is not None:
        cursor.position = max(cursor.position, last)
    return found


def _from_deliveries(session: Session) -> list[Found]:
    """Sent lessons, and the course finished with the last of them. The cursor stays below
    the oldest delivery still open (sending or retrying), so none is passed over; rows
    seen twice are queued once (the unique key)."""
    cursor = _cursor(session, "deliveries")
    rows = session.execute(
        select(Delivery, Enrollment, Subscriber)
        .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
        .where(Delivery.id > cursor.position)
        .order_by(Delivery.id)
        .limit(SCAN)
    ).all()
    found: list[Found] = []
    settled = True
    for delivery, enrollment, subscriber in rows:
        if delivery.status not in FINAL:
            settled = False
        elif settled:
            cursor.position = delivery.id
        if delivery.status != DeliveryStatus.SENT or delivery.sent_at is None:
            continue
        data = {
            "reader": _reader(subscriber),
            "sequence": enrollment.sequence,
            "lesson": delivery.lesson,
            "message_id": delivery.message_id,
        }
        sent_at = as_utc(delivery.sent_at)
        found.append(
            Found(f"lesson.sent:{delivery.id}", "lesson.sent", sent_at, subscriber.id, data)
        )
        if (
            enrollment.status == EnrollmentStatus.COMPLETED
            and enrollment.last_sent_at
            and as_utc(enrollment.last_sent_at) == sent_at
        ):
            found.append(
                Found(
                    f"sequence.completed:{enrollment.id}",
                    "sequence.completed",
                    sent_at,
                    subscriber.id,
                    {"reader": _reader(subscriber), "sequence": enrollment.sequence},
                )
            )
    return found


def collect(session: Session, now: datetime) -> int:
    """Queue what happened since the last run for every endpoint that wants it; commits.
    Returns how many rows were queued."""
    targets = endpoints(session)
    if not targets:
        return 0
    found = sorted(
        _from_events(session) + _from_deliveries(session), key=lambda item: (item.at, item.key)
    )
    known = (
        {
            (row.endpoint_id, row.event_key)
            for row in session.execute(
                select(WebhookDelivery.endpoint_id, WebhookDelivery.event_key).where(
                    WebhookDelivery.event_key.in_([item.key for item in found])
                )
            )
        }
        if found
        else set()
    )
    queued = 0
    for item in found:
        for endpoint in targets:
            if item.type not in endpoint.events.split(",") or (endpoint.id, item.key) in known:
                continue
            event_id = "evt_" + hashlib.sha256(item.key.encode()).hexdigest()[:24]
            payload = json.dumps(
                {
                    "id": event_id,
                    "type": item.type,
                    "created_at": item.at.isoformat(),
                    "data": item.data,
                },
                separators=(",", ":"),
            )
            try:
                with session.begin_nested():
                    session.add(
                        WebhookDelivery(
                            endpoint_id=endpoint.id,
                            event_key=item.key,
                            type=item.type,
                            subscriber_id=item.subscriber_id,
                            payload=payload,
                            created_at=now,
                            next_attempt_at=now,
                            attempts=0,
                        )
                    )
                queued += 1
            except IntegrityError:
                continue  # queued by an earlier run
    session.commit()
    return queued


def backoff(attempts: int) -> timedelta:
    """30 s, 1, 2, 4 ... minutes, at most an hour between tries."""
    return min(timedelta(seconds=30 * 2 ** max(attempts - 1, 0)), timedelta(hours=1))


def _post(endpoint: WebhookEndpoint, body: bytes, now: datetime, reach: Reach) -> Answer:
    """One signed POST to the endpoint, under drip.integrations.outgoing's address rules."""
    headers = {
        "Content-Type": "application/json",
        "Drip-Signature": signature(endpoint.secret, int(now.timestamp()), body),
        "User-Agent": "drip-webhooks",
    }
    return post(
        endpoint.url, body, headers, reach, private_network=endpoint.allow_private, timeout=TIMEOUT
    )


@dataclass
class Delivered:
    sent: int = 0
    failed: int = 0
    given_up: int = 0


def deliver(session: Session, now: datetime, reach: Reach = STRICT) -> Delivered:
    """POST the rows that are due, oldest first, in order per reader and endpoint: a row
    waits while an older one of the same reader is still being retried. Commits each.
    `reach`: which addresses may be reached (drip.integrations.outgoing; public ones only by
    default)."""
    result = Delivered()
    pending = list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.delivered_at.is_(None), WebhookDelivery.given_up_at.is_(None))
            .order_by(WebhookDelivery.id)
            .limit(BATCH * 5)
        )
    )
    blocked: set[tuple[int, int | None]] = set()
    tried = 0
    for row in pending:
        lane = (row.endpoint_id, row.subscriber_id)
        if lane in blocked:
            continue
        if as_utc(row.next_attempt_at) > now or tried >= BATCH:
            blocked.add(lane)
            continue
        endpoint = session.get(WebhookEndpoint, row.endpoint_id)
        if endpoint is None or endpoint.removed_at is not None:
            row.given_up_at = now
            row.last_error = "the endpoint was removed"
            session.commit()
            continue
        tried += 1
        answer = _post(endpoint, row.payload.encode(), now, reach)
        status, problem = answer.status, answer.problem
        row.attempts += 1
        row.last_status = status
        if status is not None and 200 <= status < 300:
            row.delivered_at = now
            row.last_error = None
            result.sent += 1
        elif answer.hopeless or now - as_utc(row.created_at) >= GIVE_UP_AFTER:
            row.given_up_at = now
            row.last_error = problem or f"HTTP {status}"
            result.given_up += 1
            log.warning("webhook %s to %s given up: %s", row.type, endpoint.url, row.last_error)
        else:
            row.next_attempt_at = now + backoff(row.attempts)
            row.last_error = problem or f"HTTP {status}"
            result.failed += 1
            blocked.add(lane)
        session.commit()
    return result


def replay(session: Session, delivery_id: int, now: datetime) -> WebhookDelivery:
    """Send a row again at the next run (an owner's choice, from the admin or the CLI)."""
    row = session.get(WebhookDelivery, delivery_id)
    if row is None:
        raise HookError(f"there is no webhook delivery {delivery_id}")
    row.delivered_at = row.given_up_at = None
    row.next_attempt_at = now
    row.created_at = now  # a fresh day of retries
    return row
