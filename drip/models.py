"""The tables: who subscribed to what, where each reader is, and every message sent.

A reader's path through the tables: a sign-up arrives as a `SignUpRequest`; taken in, it
becomes a `Subscriber` (with a `ConsentRecord`) with an `Enrollment` per sequence that says
which lesson is next and when it is due, and each lesson sent is a `Delivery` row, written
before the SMTP hand-off and updated after it.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


T = TypeVar("T", bound=enum.StrEnum)


class StrEnumType(TypeDecorator[T]):
    """A StrEnum kept as its plain value in a VARCHAR: the stored text and the DDL are those
    of the `String` column it replaces (no migration), and reading gives the enum back."""

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[T], length: int) -> None:
        super().__init__(length)
        self.enum_class = enum_class
        self._members = {member.value: member for member in enum_class}  # a lookup per row
        self._values = {member.value: str(member.value) for member in enum_class}

    def process_bind_param(self, value: T | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        known = self._values.get(value)
        return known if known is not None else self.enum_class(value).value  # raises

    def process_result_value(self, value: str | None, dialect: Dialect) -> T | None:
        return None if value is None else self._members[value]


intpk = Annotated[int, mapped_column(Integer, primary_key=True)]
utc = Annotated[datetime, mapped_column(UTCDateTime())]
utc_or_none = Annotated[datetime | None, mapped_column(UTCDateTime(), nullable=True)]
slug = Annotated[str, mapped_column(String(100))]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


class EnrollmentStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for the reader to confirm (double opt-in)
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    UNSUBSCRIBED = "unsubscribed"
    SUPPRESSED = "suppressed"  # the address bounced permanently or an operator blocked it
    EXPIRED = "expired"  # never confirmed within the confirmation window


class DeliveryStatus(enum.StrEnum):
    SENDING = "sending"  # written before the SMTP hand-off; left behind only by a dead worker
    SENT = "sent"
    RETRYING = "retrying"  # a transient SMTP failure; the enrollment is due again later
    FAILED = "failed"  # permanent failure, or too many transient ones
    CANCELLED = "cancelled"  # the reader left before the retry went out


class EventKind(enum.StrEnum):
    """What an `Event` on a reader's timeline records."""

    SIGNED_UP = "signed_up"
    CONFIRMATION_SENT = "confirmation_sent"
    CONFIRMATION_REQUESTED = "confirmation_requested"
    CONFIRMED = "confirmed"
    CONFIRM_REFUSED = "confirm_refused"  # a suppressed address used its confirmation link
    DOWNLOAD = "download"
    MAGNET_LINK_SENT = "magnet_link_sent"
    MAGNET_LINK_FAILED = "magnet_link_failed"
    PAUSED = "paused"
    RESUMED = "resumed"
    RESTARTED = "restarted"
    RETRY_REQUESTED = "retry_requested"
    REJOINED = "rejoined"
    UNSUBSCRIBED = "unsubscribed"
    SUPPRESSED = "suppressed"


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    timezone: Mapped[str] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[utc]
    suppressed_at: Mapped[utc_or_none]
    suppressed_reason: Mapped[str | None] = mapped_column(Text)

    enrollments: Mapped[list[Enrollment]] = relationship(back_populates="subscriber")


class Enrollment(Base):
    """One reader in one sequence: status, the next lesson and when it is due.

    `due_at` doubles as the claim lease: a worker that claims the row moves `due_at` to the
    end of its lease, so a worker that dies leaves rows that simply fall due again.
    """

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "sequence"),
        Index("ix_enrollments_status_due", "status", "due_at"),
    )

    id: Mapped[intpk]
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    sequence: Mapped[slug]
    status: Mapped[EnrollmentStatus] = mapped_column(StrEnumType(EnrollmentStatus, 20))
    next_lesson: Mapped[str | None] = mapped_column(String(100))
    due_at: Mapped[utc_or_none]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[utc]
    confirmation_sent_at: Mapped[utc_or_none]
    confirmed_at: Mapped[utc_or_none]
    last_sent_at: Mapped[utc_or_none]
    completed_at: Mapped[utc_or_none]
    unsubscribed_at: Mapped[utc_or_none]

    subscriber: Mapped[Subscriber] = relationship(back_populates="enrollments")
    deliveries: Mapped[list[Delivery]] = relationship(
        back_populates="enrollment", order_by="Delivery.id"
    )


class Delivery(Base):
    """One lesson for one enrollment; unique per lesson, so nobody gets a lesson twice."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "lesson"),
        Index("ix_deliveries_status_updated", "status", "updated_at"),
        Index("ix_deliveries_sent_at", "sent_at"),
    )

    id: Mapped[intpk]
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    lesson: Mapped[slug]
    lesson_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[DeliveryStatus] = mapped_column(StrEnumType(DeliveryStatus, 20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[str] = mapped_column(String(255))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[utc]
    updated_at: Mapped[utc]
    sent_at: Mapped[utc_or_none]

    enrollment: Mapped[Enrollment] = relationship(back_populates="deliveries")


class SignUpRequest(Base):
    """A sign-up the web accepted and the worker has not yet taken in (drip.intake).

    It holds everything the reader submitted and the consent as shown, so once the answer
    has gone back to the reader nothing can be lost. Taking it in deletes the row.
    """

    __tablename__ = "signup_requests"

    id: Mapped[intpk]
    received_at: Mapped[utc]
    sequence: Mapped[slug]
    email: Mapped[str] = mapped_column(String(320), index=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    timezone: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(200))
    consent_text: Mapped[str] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)
    problem: Mapped[str | None] = mapped_column(Text)  # why it is still waiting, if it is


class ConsentRecord(Base):
    """What the reader agreed to, when, and from where: kept as long as the subscription."""

    __tablename__ = "consent_records"

    id: Mapped[intpk]
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE")
    )
    created_at: Mapped[utc]
    source: Mapped[str] = mapped_column(String(200))
    consent_text: Mapped[str] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    """A reader's timeline beyond deliveries: confirmation, downloads, unsubscribes, pauses."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_subscriber_at", "subscriber_id", "at"),)

    id: Mapped[intpk]
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE")
    )
    kind: Mapped[EventKind] = mapped_column(StrEnumType(EventKind, 40))
    at: Mapped[utc]
    detail: Mapped[str] = mapped_column(Text, default="")


class SequenceState(Base):
    """Operator switches per sequence; the sequence itself lives in files."""

    __tablename__ = "sequence_states"

    sequence: Mapped[str] = mapped_column(String(100), primary_key=True)
    paused: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[utc]


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[utc]
    last_login_at: Mapped[utc_or_none]
    # Part of every login session's version: logging out moves it on, which ends the
    # session on the server side, not only by dropping the cookie.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class WorkerHeartbeat(Base):
    """One row per worker process; /healthz and the admin read the newest pass from here."""

    __tablename__ = "worker_heartbeats"

    worker: Mapped[str] = mapped_column(String(100), primary_key=True)
    started_at: Mapped[utc]
    last_pass_at: Mapped[utc]
    last_pass_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_pass_failed: Mapped[int] = mapped_column(Integer, default=0)


class RateLimit(Base):
    """A fixed-window counter shared by every web worker (sign-ups, resends, logins)."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[utc]
    count: Mapped[int] = mapped_column(Integer, default=0)


class LinkRequest(Base):
    """A fresh link a reader asked for on a page (the lead-magnet download): queued by the
    request, sent by the next dispatch pass like every other message."""

    __tablename__ = "link_requests"

    id: Mapped[intpk]
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    requested_at: Mapped[utc]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
