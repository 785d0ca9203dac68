"""What keeps mail arriving: bounces and complaints reported, the guardrails' pauses,
webhook tokens already used, and the relay's shared pace."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from drip.store.models.columns import Base, intpk, utc, utc_or_none


class BounceEvent(Base):
    """A bounce or complaint a provider or the bounce mailbox reported
    (drip.deliverability.bounces).

    `key` is the provider's own event id (or a hash of the report) and is unique, so a
    provider that retries the same event changes nothing the second time.
    """

    __tablename__ = "bounce_events"
    __table_args__ = (
        Index("ix_bounce_events_delivery", "delivery_id"),
        Index("ix_bounce_events_subscriber", "subscriber_id", "received_at"),
        Index("ix_bounce_events_received", "received_at"),
    )

    id: Mapped[intpk]
    key: Mapped[str] = mapped_column(String(255), unique=True)
    received_at: Mapped[utc]
    source: Mapped[str] = mapped_column(String(20))  # webhook, mailbox
    provider: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))  # hard, soft, complaint
    email: Mapped[str] = mapped_column(String(320))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE")
    )
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    matched_by: Mapped[str] = mapped_column(String(20))  # verp, message-id, address, none
    outcome: Mapped[str] = mapped_column(String(40))
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    # Proven to come from a message drip sent (signed VERP address or Message-ID, or a
    # provider's signed webhook about a delivery drip made): only these change a reader.
    verified: Mapped[bool] = mapped_column(default=False, server_default=text("false"))


class SendingPause(Base):
    """A guardrail's stop for every sequence; the open row (no `resumed_at`) is in force."""

    __tablename__ = "sending_pauses"

    id: Mapped[intpk]
    paused_at: Mapped[utc]
    reason: Mapped[str] = mapped_column(Text)
    resumed_at: Mapped[utc_or_none]
    resumed_by: Mapped[str | None] = mapped_column(String(320))


class WebhookToken(Base):
    """Signature tokens already used (Mailgun), so a captured request cannot be replayed."""

    __tablename__ = "webhook_tokens"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    token: Mapped[str] = mapped_column(String(255), primary_key=True)
    seen_at: Mapped[utc]


class SendPace(Base):
    """The relay's pace shared by every worker (drip.mail.pace): the next free send slot."""

    __tablename__ = "send_pace"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_slot: Mapped[float] = mapped_column(Float, default=0.0)
