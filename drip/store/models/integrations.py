"""Other tools' ways in and out: REST API keys, and the outgoing webhooks with their
queue and the relay's cursors."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from drip.store.models.columns import Base, intpk, utc, utc_or_none


class ApiKey(Base):
    """A key for the REST API (/api/v1). Only its SHA-256 is kept: the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(100), unique=True)
    scope: Mapped[str] = mapped_column(String(10))  # read or write
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[utc]
    last_used_at: Mapped[utc_or_none]
    revoked_at: Mapped[utc_or_none]


class WebhookEndpoint(Base):
    """A URL of another tool that hears about readers (drip.integrations.hooks), with its signing
    secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[intpk]
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[str] = mapped_column(Text)  # comma-separated event types
    secret: Mapped[str] = mapped_column(String(100))
    allow_private: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[utc]
    removed_at: Mapped[utc_or_none]


class WebhookDelivery(Base):
    """One event for one endpoint: a row first, then POSTed by the worker, in order per
    reader, retried with backoff for a day. Unique per (endpoint, event), so an event found
    twice is queued once."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_key"),
        Index("ix_webhook_deliveries_pending", "delivered_at", "given_up_at", "next_attempt_at"),
    )

    id: Mapped[intpk]
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(120))
    type: Mapped[str] = mapped_column(String(40))
    subscriber_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[utc]
    next_attempt_at: Mapped[utc]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[utc_or_none]
    given_up_at: Mapped[utc_or_none]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)


class WebhookCursor(Base):
    """How far the relay has read each source of events (events, deliveries, completions)."""

    __tablename__ = "webhook_cursors"

    source: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
