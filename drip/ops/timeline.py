"""A reader's timeline for one enrollment: consent, confirmation, each delivery with its
Message-ID, downloads and leaving, in the order they happened (the admin's reader page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from drip.store.models import BounceEvent, ConsentRecord, Enrollment, Event


@dataclass(frozen=True)
class Entry:
    """One line of a reader's timeline."""

    at: datetime
    kind: str
    text: str
    detail: str = ""
    status: str = ""


EVENT_TEXT = {
    "signed_up": "Signed up",
    "confirmed": "Confirmed",
    "confirmation_sent": "Confirmation email sent",
    "confirmation_requested": "Asked for a fresh confirmation link",
    "confirmation_reminded": "Reminded to confirm (the one reminder)",
    "download": "Downloaded the lead magnet",
    "unsubscribed": "Unsubscribed",
    "paused": "Paused",
    "resumed": "Resumed",
    "restarted": "Restarted by an operator",
    "suppressed": "Suppressed",
    "rejoined": "Rejoined",
    "retry_requested": "Retry requested by an operator",
    "bounced": "Hard bounce",
    "soft_bounce": "Soft bounce",
    "complained": "Spam complaint",
    "not_sent": "Not sent",
    "offer_failed": "Offer not sent",
    "magnet_link_failed": "Fresh download link not sent",
    "replied": "Replied",
    "pace_paused": "Paused by the reader",
    "pace_away": "Away, said the reader",
    "pace_slower": "Slower, chosen by the reader",
    "pace_next_now": "Asked for the next lesson now",
    "pace_reset": "Back to the course's own pace",
    "pace_still_wanted_sent": "“Still want the course?” email sent",
    "went_quiet": "Went quiet",  # drip.audience.engagement
    "repermission_sent": "Asked “Still want these?”",
    "kept": "Pressed “Keep them coming”",
    "gone": "Gone: no answer to “Still want these?”",
}
REPORT_TEXT = {"hard": "hard bounce", "soft": "soft bounce", "complaint": "spam complaint"}


def timeline(session: Session, enrollment: Enrollment) -> list[Entry]:
    """Sign-up and consent, confirmation, each delivery, downloads and leaving, in order."""
    entries = [
        Entry(
            c.created_at,
            "consent",
            "Consent recorded",
            f"{c.source} · “{c.consent_text}”" + (f" · IP {c.ip}" if c.ip else ""),
        )
        for c in session.scalars(
            select(ConsentRecord).where(ConsentRecord.enrollment_id == enrollment.id)
        )
    ]
    entries += [
        Entry(e.at, e.kind, EVENT_TEXT.get(e.kind, e.kind.replace("_", " ")), e.detail)
        # In the order written: events of one instant (gone, then paused) keep their order
        # through the stable sort below; PostgreSQL returns rows in no promised order.
        for e in session.scalars(
            select(Event).where(Event.enrollment_id == enrollment.id).order_by(Event.id)
        )
    ]
    entries += _unverified(session, enrollment)
    for delivery in enrollment.deliveries:
        detail = f"Message-ID {delivery.message_id}"
        if delivery.last_error:
            detail += f" · {delivery.last_error}"
        entries.append(
            Entry(
                delivery.sent_at or delivery.updated_at,
                "delivery",
                f"Lesson {delivery.lesson}",
                detail,
                delivery.status,
            )
        )
    return sorted(entries, key=lambda e: (e.at, e.kind != "consent"))


def _unverified(session: Session, enrollment: Enrollment) -> list[Entry]:
    """Bounce and complaint reports that named this reader without proving drip sent the
    message: shown so the operator sees them, though they changed nothing."""
    reports = session.scalars(
        select(BounceEvent).where(
            BounceEvent.subscriber_id == enrollment.subscriber_id,
            BounceEvent.verified.is_(False),
            or_(BounceEvent.enrollment_id == enrollment.id, BounceEvent.enrollment_id.is_(None)),
        )
    )
    return [
        Entry(
            b.received_at,
            "bounce-report",
            f"Unverified {REPORT_TEXT.get(b.kind, b.kind)} report: changed nothing",
            f"{b.provider}{' (bounce mailbox)' if b.source == 'mailbox' else ''} · matched by "
            f"{b.matched_by} only, which does not prove drip sent it"
            + (f" · {b.diagnostic}" if b.diagnostic else ""),
            "unverified",
        )
        for b in reports
    ]
