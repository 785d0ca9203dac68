"""One-off emails to many readers: saved segments, broadcasts and one row per recipient."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from drip.store.models.columns import Base, intpk, utc, utc_or_none


class BroadcastStatus(enum.StrEnum):
    DRAFT = "draft"  # written (in the admin or through the API), not yet scheduled
    SCHEDULED = "scheduled"
    DONE = "done"  # every recipient settled
    CANCELLED = "cancelled"


class RecipientStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a worker (due_at is its lease end), or outcome unknown
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"
    SKIPPED = "skipped"  # left, suppressed, or the broadcast was cancelled before their turn


class Segment(Base):
    """A saved filter of readers (drip.audience.segments), by name: broadcasts and exports take one.
    The definition is the checked JSON `drip.audience.segments.parse` accepts; the database
    evaluates it each time, so a segment is always today's readers."""

    __tablename__ = "segments"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(100), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[utc]
    created_by: Mapped[str] = mapped_column(String(320))


class Broadcast(Base):
    """A one-off email to the readers of one or more sequences (drip.dispatch.broadcasts). Its
    subject and body are kept here, whether it came from a file, the admin or the API, so
    the worker sends each the same way and a restart loses none."""

    __tablename__ = "broadcasts"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(Text)
    preheader: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text)
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    send_at: Mapped[utc]  # a draft's: when it was written
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[utc]
    cancelled_at: Mapped[utc_or_none]
    created_by: Mapped[str] = mapped_column(String(320), default="", server_default="")


class BroadcastRecipient(Base):
    """One reader of a broadcast: unique per (broadcast, reader), so each gets it once.
    `due_at` is the first opening of their send window at or after the broadcast's time,
    and doubles as the claim lease, as for enrollments."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "subscriber_id"),
        Index("ix_broadcast_recipients_status_due", "status", "due_at", "id"),  # claims
        Index("ix_broadcast_recipients_subscriber_sent", "subscriber_id", "sent_at"),  # caps
        Index("ix_broadcast_recipients_sent_at", "sent_at"),  # the engagement sweep
    )

    id: Mapped[intpk]
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(  # indexed first in ..._subscriber_sent
        ForeignKey("subscribers.id", ondelete="CASCADE")
    )
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[utc]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[utc_or_none]
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))  # written before the hand-off
    variant: Mapped[str | None] = mapped_column(String(8))  # a, b or held (broadcast_variants)
