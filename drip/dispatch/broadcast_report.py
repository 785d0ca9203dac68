"""A broadcast's progress as the admin's live bars and the REST API show it: recipients
by where they are, bounced and clicked since, and why the waiting copies wait."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from drip.content.sequences import Library
from drip.dispatch.broadcast_winner import describe, figures
from drip.dispatch.broadcasts import lesson_key, progress
from drip.store.models import (
    BounceEvent,
    Broadcast,
    BroadcastRecipient,
    LinkClick,
    RecipientStatus,
)


def report(session: Session, broadcast: Broadcast, library: Library) -> dict[str, Any]:
    """A broadcast's progress for the admin's live bars and the API: recipients by where
    they are (`queued` counts those waiting, being sent and to be retried), `bounced` the
    sent ones whose address a provider or the bounce mailbox reported bouncing since, and
    `clicked` the readers who clicked one of its links (only when its first sequence tracks
    links; `tracked` says so)."""
    counts = progress(session, broadcast.id)
    bounced = session.scalar(
        select(func.count(func.distinct(BroadcastRecipient.id))).where(
            BroadcastRecipient.broadcast_id == broadcast.id,
            BroadcastRecipient.status == RecipientStatus.SENT,
            exists().where(
                BounceEvent.subscriber_id == BroadcastRecipient.subscriber_id,
                BounceEvent.kind.in_(["hard", "soft"]),
                BounceEvent.received_at >= BroadcastRecipient.sent_at,
            ),
        )
    )
    first = library.get(broadcast.audience["to"][0]) if broadcast.audience.get("to") else None
    tracked = bool(first and first.track_links)
    clicked = (
        session.scalar(
            select(func.count(func.distinct(LinkClick.enrollment_id))).where(
                LinkClick.sequence.in_(broadcast.audience["to"]),  # ix_link_clicks_lesson
                LinkClick.lesson == lesson_key(broadcast.id),
                LinkClick.counted.is_(True),
                LinkClick.link_index >= 0,
            )
        )
        if tracked
        else 0
    )
    return {
        "id": broadcast.id,
        "name": broadcast.name,
        "waiting_because": waiting_because(session, broadcast.id),
        "subject": broadcast.subject,
        "status": str(broadcast.status),
        "send_at": broadcast.send_at.isoformat(),
        "audience": broadcast.audience,
        "total": sum(counts.values()),
        "queued": counts[RecipientStatus.QUEUED]
        + counts[RecipientStatus.SENDING]
        + counts[RecipientStatus.RETRYING],
        "sent": counts[RecipientStatus.SENT],
        "failed": counts[RecipientStatus.FAILED],
        "skipped": counts[RecipientStatus.SKIPPED],
        "bounced": int(bounced or 0),
        "clicked": int(clicked or 0),
        "tracked": tracked,
        "test": describe(figures(session, broadcast)),  # variants: (broadcast_winner)
    }


def waiting_because(session: Session, broadcast_id: int) -> list[tuple[str, int]]:
    """Why copies still to be sent wait (a course that cannot be read, the relay's last
    answer), with how many wait for each reason: the broadcast page shows them."""
    rows = session.execute(
        select(BroadcastRecipient.last_error, func.count())
        .where(
            BroadcastRecipient.broadcast_id == broadcast_id,
            BroadcastRecipient.status.in_([RecipientStatus.QUEUED, RecipientStatus.RETRYING]),
            BroadcastRecipient.last_error.is_not(None),
        )
        .group_by(BroadcastRecipient.last_error)
        .order_by(func.count().desc())
        .limit(10)
    )
    return [(str(reason), int(number)) for reason, number in rows]
