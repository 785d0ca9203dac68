"""The tables: who subscribed to what, where each reader is, and every message sent.

A reader's path through the tables: a sign-up arrives as a `SignUpRequest`; taken in, it
becomes a `Subscriber` (with a `ConsentRecord`) with an `Enrollment` per sequence that says
which lesson is next and when it is due, and each lesson sent is a `Delivery` row, written
before the SMTP hand-off and updated after it.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
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
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


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


# How `deliveries.last_error` begins once a hand-off's outcome was unknown (the connection
# was lost after DATA, or the worker stopped before recording it) and the message went out
# again under its Message-ID: the note is kept when the delivery is later sent, so the
# dashboard can count the readers who may have received it twice.
OUTCOME_UNKNOWN = "outcome unknown, re-sent"
HOLD_CONTENT = "content"  # enrollments.hold_reason: held until their course can be read


class EventKind(enum.StrEnum):
    """What an `Event` on a reader's timeline records."""

    SIGNED_UP = "signed_up"
    CONFIRMATION_SENT = "confirmation_sent"
    CONFIRMATION_REQUESTED = "confirmation_requested"
    CONFIRMATION_REMINDED = "confirmation_reminded"  # the one reminder (drip.dispatch.reminders)
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
    CREATED = "created"  # by an integration, through the REST API
    TAGGED = "tagged"
    UNTAGGED = "untagged"
    EXITED = "exited"  # reached a course's goal (`exit_when`)
    CLICKED = "clicked"  # a tracked link, by a reader (not a scanner)
    CHAINED = "chained"  # started on the next course (`on_complete`)
    OFFERED = "offered"
    OFFER_FAILED = "offer_failed"
    NOT_SENT = "not_sent"  # a message that could not be built or addressed (drip.mail.handoff)
    BROADCASTS_OFF = "broadcasts_off"
    # the reader's pace, chosen from a lesson's footer or the preferences page (drip.audience.pace)
    PACE_PAUSED = "pace_paused"
    PACE_AWAY = "pace_away"
    PACE_SLOWER = "pace_slower"
    PACE_NEXT_NOW = "pace_next_now"
    PACE_RESET = "pace_reset"  # a choice undone: back to the course's own pace
    PACE_STILL_WANTED_SENT = "pace_still_wanted_sent"  # after a pause of more than 60 days
    # reported by the mail provider after the hand-off (drip.deliverability.bounces)
    BOUNCED = "bounced"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINED = "complained"
    REPLIED = "replied"  # a signed reply to a message drip sent (drip.replies)
    # engagement (drip.audience.engagement): what the reader does, never opens
    WENT_QUIET = "went_quiet"  # no action across the last N deliveries
    REPERMISSION_SENT = "repermission_sent"  # "Still want these?"
    KEPT = "kept"  # "keep them coming" pressed
    GONE = "gone"  # no answer M days after the re-permission email: courses paused


class Engagement(enum.StrEnum):
    """What a reader's actions say (drip.audience.engagement); opens never count."""

    ENGAGED = "engaged"  # an action within the last N deliveries
    QUIET = "quiet"  # none across N deliveries
    GONE = "gone"  # no answer M days after the re-permission email


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (
        # Search by the start of an address (LIKE 'abc%') in any collation on PostgreSQL.
        Index("ix_subscribers_email_prefix", "email", postgresql_ops={"email": "text_pattern_ops"}),
        # Segments by exam date (drip.audience.segments.EXAM_DATE): an expression index, spelled per
        # dialect; SQLite's copy is made by migration 0017 (SQLAlchemy cannot reflect it).
        Index("ix_subscribers_exam_date", text("(attributes ->> 'exam_date')")).ddl_if(
            dialect="postgresql"
        ),
        Index("ix_subscribers_engagement_id", "engagement", "id"),
    )

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    timezone: Mapped[str] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[utc]
    suppressed_at: Mapped[utc_or_none]
    suppressed_reason: Mapped[str | None] = mapped_column(Text)
    broadcasts_off_at: Mapped[utc_or_none]  # "no more broadcasts", from a broadcast's link
    # kept by drip.audience.engagement, so a list filters on a column, not on the timeline;
    # a server default only, so the bulk inserts of imports need not name it
    engagement: Mapped[Engagement] = mapped_column(
        StrEnumType(Engagement, 10), server_default="engaged"
    )
    engaged_at: Mapped[utc_or_none]  # the last action (a click, a reply, ...), or sign-up
    repermission_at: Mapped[utc_or_none]  # "Still want these?" sent and not yet answered

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
        Index("ix_enrollments_unchained", "status", "chained_at", "completed_at"),
        # The admin's readers list, newest first, one page at a time (keyset on id).
        Index("ix_enrollments_sequence_status_id", "sequence", "status", "id"),
        Index("ix_enrollments_sequence_id", "sequence", "id"),
        Index("ix_enrollments_status_id", "status", "id"),
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
    hold_reason: Mapped[str | None] = mapped_column(String(20))  # HOLD_CONTENT, or None
    paused_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[utc]
    confirmation_sent_at: Mapped[utc_or_none]
    # when the one reminder of an unconfirmed sign-up went out (drip.dispatch.reminders)
    confirm_reminded_at: Mapped[utc_or_none]
    confirmed_at: Mapped[utc_or_none]
    last_sent_at: Mapped[utc_or_none]
    completed_at: Mapped[utc_or_none]
    unsubscribed_at: Mapped[utc_or_none]
    # when its `on_complete` was carried out (drip.dispatch.chaining)
    chained_at: Mapped[utc_or_none]
    # The Message-ID of its confirmation email or course offer, written before the hand-off
    # so a retry reuses it (drip.mail.message_ids); a confirmation's is cleared once it is sent.
    pending_message_id: Mapped[str | None] = mapped_column(String(255))
    # The reader's pace (drip.audience.pace): every delay counted twice; a pause or an
    # absence since `paused_since` until `resumes_at` (none: until the reader comes back);
    # when the one "still want the course?" email went out during that pause.
    slower: Mapped[bool] = mapped_column(server_default=text("false"))  # bulk inserts omit it
    paused_since: Mapped[utc_or_none]
    resumes_at: Mapped[utc_or_none]
    pause_kind: Mapped[str | None] = mapped_column(String(10))  # "pause" or "away"
    still_wanted_at: Mapped[utc_or_none]

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
        Index("ix_deliveries_status_id", "status", "id"),  # the delivery log by status
    )

    id: Mapped[intpk]
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    lesson: Mapped[slug]
    lesson_version: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str | None] = mapped_column(String(8))  # a, b, c: drip.content.variants
    status: Mapped[DeliveryStatus] = mapped_column(StrEnumType(DeliveryStatus, 20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[str] = mapped_column(String(255))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[utc]
    updated_at: Mapped[utc]
    sent_at: Mapped[utc_or_none]

    enrollment: Mapped[Enrollment] = relationship(back_populates="deliveries")


class SignUpRequest(Base):
    """A sign-up the web accepted and the worker has not yet taken in (drip.audience.intake).

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
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
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
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[EventKind] = mapped_column(StrEnumType(EventKind, 40))
    at: Mapped[utc]
    detail: Mapped[str] = mapped_column(Text, default="")


class EnrollmentTally(Base):
    """Enrollments per sequence and status (and how many of them confirmed), kept by
    database triggers in the same transaction as each change (migration 0003), so the admin
    and /metrics read a few rows instead of counting a million."""

    __tablename__ = "enrollment_tallies"

    sequence: Mapped[str] = mapped_column(String(100), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    enrollments: Mapped[int] = mapped_column(Integer, default=0)
    confirmed: Mapped[int] = mapped_column(Integer, default=0)


class DeliveryTally(Base):
    """Deliveries per sequence, lesson and status, kept by triggers like EnrollmentTally."""

    __tablename__ = "delivery_tallies"

    sequence: Mapped[str] = mapped_column(String(100), primary_key=True)
    lesson: Mapped[str] = mapped_column(String(100), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    deliveries: Mapped[int] = mapped_column(Integer, default=0)


class DailyTally(Base):
    """Per UTC day: deliveries now sent that day (by `sent_at`) and deliveries now failed
    whose last attempt was that day (by `updated_at`); kept by triggers."""

    __tablename__ = "daily_tallies"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)


class SequenceState(Base):
    """Operator switches per sequence; the sequence itself lives in files."""

    __tablename__ = "sequence_states"

    sequence: Mapped[str] = mapped_column(String(100), primary_key=True)
    paused: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[utc]


class Role(enum.StrEnum):
    """What an operator may do in the admin; each role may do everything the one below may
    (drip.web.admin.access). Lower-case member names: `@requires(Role.editor)` reads as a rule."""

    viewer = "viewer"  # reads every page, changes nothing
    editor = "editor"  # and edits content: lessons, sequences, magnets, broadcast drafts
    owner = "owner"  # and everything else: readers, sending, operators, the audit log

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[utc]
    last_login_at: Mapped[utc_or_none]
    # Operators from before roles had every power: they stay owners.
    role: Mapped[Role] = mapped_column(
        StrEnumType(Role, 20), default=Role.owner, server_default=Role.owner.value
    )


class OperatorSession(Base):
    """One logged-in browser (drip.ops.operator_sessions). The cookie carries a random id and
    the row only its SHA-256, so neither the secret key nor a copy of this table lets
    anyone make a cookie that opens the admin; deleting the row ends the session."""

    __tablename__ = "operator_sessions"

    id: Mapped[intpk]
    operator_id: Mapped[int] = mapped_column(
        ForeignKey("operators.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[utc]
    last_seen_at: Mapped[utc]
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")


class AuditEntry(Base):
    """One thing an operator did in the admin (drip.ops.audit). The operator is kept as their
    address, not a key: removing the operator keeps the history of what they did."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_operator_id", "operator_email", "id"),)

    id: Mapped[intpk]
    at: Mapped[utc]
    operator_email: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[str | None] = mapped_column(Text)  # content as it was, for a diff
    after: Mapped[str | None] = mapped_column(Text)


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
    """A one-off message to a reader, as a row the pass leases and sends like every other:
    a fresh link they asked for on a page (`magnet-link`, queued by the request) or the
    offer of the next course (`offer`, queued when they finish one), or the "still want the
    course?" email after a long pause (`still_wanted`). `due_at` doubles as
    the claim's lease, with `lease_owner`, as for enrollments."""

    __tablename__ = "link_requests"

    id: Mapped[intpk]
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    requested_at: Mapped[utc]
    due_at: Mapped[utc] = mapped_column(  # at once, unless said otherwise
        UTCDateTime(), index=True, default=lambda ctx: ctx.get_current_parameters()["requested_at"]
    )
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))  # written before the hand-off


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


class SubscriberTag(Base):
    """A tag on a reader (from a form, a link, the admin or the API), and where it came from."""

    __tablename__ = "subscriber_tags"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)
    created_at: Mapped[utc]
    source: Mapped[str] = mapped_column(String(200), default="")


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


class LinkClick(Base):
    """A click on a tracked link (`link_index` of the lesson), or an open (`link_index`
    -1). `counted` is False for what looks like a mail scanner, not a reader: no browser
    headers, or within seconds of the send."""

    __tablename__ = "link_clicks"
    __table_args__ = (
        Index("ix_link_clicks_lesson", "sequence", "lesson", "link_index"),
        Index("ix_link_clicks_at", "at"),  # segments: who clicked lately
    )

    id: Mapped[intpk]
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
    )
    sequence: Mapped[slug]
    lesson: Mapped[str] = mapped_column(String(100))
    link_index: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    at: Mapped[utc]
    counted: Mapped[bool] = mapped_column(default=True)
    user_agent: Mapped[str | None] = mapped_column(Text)


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
    """One reader of a broadcast, once each (unique per broadcast and reader); `due_at`, the
    first opening of their send window at or after its time, doubles as the claim lease."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "subscriber_id"),
        Index("ix_broadcast_recipients_status_due", "status", "due_at"),
        Index("ix_broadcast_recipients_subscriber_sent", "subscriber_id", "sent_at"),  # caps
    )

    id: Mapped[intpk]
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
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


class ImportJob(Base):
    """A CSV of readers being imported in the background (drip.audience.imports): it survives the
    request that brought it, reports progress, and ends with exact counts."""

    __tablename__ = "import_jobs"

    id: Mapped[intpk]
    created_at: Mapped[utc]
    created_by: Mapped[str] = mapped_column(String(320))
    filename: Mapped[str] = mapped_column(String(255))
    sequence: Mapped[slug]
    confirmed: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(200))
    csv: Mapped[str] = mapped_column(Text)  # jobs queued before 0021; new ones leave it ""
    file: Mapped[str | None] = mapped_column(String(255))  # under the data folder (0021 on)
    status: Mapped[str] = mapped_column(String(20))  # queued, running, done, failed
    total: Mapped[int] = mapped_column(Integer, default=0)  # data rows in the file
    processed: Mapped[int] = mapped_column(Integer, default=0)  # rows done, committed
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [line, problem], first 1,000
    finished_at: Mapped[utc_or_none]
    last_error: Mapped[str | None] = mapped_column(Text)


class MagnetBuild(Base):
    """A rebuild of a sequence's lead-magnet PDFs asked for in the admin
    (drip.jobs.magnet_builds). `active` holds the slug while the build is queued or running and
    is unique, so a second request joins the build rather than queue another."""

    __tablename__ = "magnet_builds"
    __table_args__ = (Index("ix_magnet_builds_sequence_id", "sequence", "id"),)

    id: Mapped[intpk]
    sequence: Mapped[slug]
    requested_by: Mapped[str] = mapped_column(String(320))
    requested_at: Mapped[utc]
    status: Mapped[str] = mapped_column(String(20))  # queued, running, done, failed
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    steps_total: Mapped[int] = mapped_column(Integer, default=0)
    step: Mapped[str] = mapped_column(String(200), default="")  # what it is doing now
    started_at: Mapped[utc_or_none]
    finished_at: Mapped[utc_or_none]
    dropped: Mapped[int] = mapped_column(Integer, default=0)  # stale per-reader PDFs removed
    error: Mapped[str | None] = mapped_column(Text)  # `path:line: problem`, one a line
    active: Mapped[str | None] = mapped_column(String(100), unique=True)


class Reply(Base):
    """A reader's answer to a message drip sent (drip.replies), from the reply mailbox or a
    provider's inbound webhook. `matched` only when its signed reply address names the
    enrollment and message (`label`: a lesson key, `broadcast-<id>`, `offer-<slug>`); an
    unsigned or forged one is kept with `matched` false and changes nobody. `key` is the
    reply's Message-ID (or a hash of it), unique, so a message read twice is stored once."""

    __tablename__ = "replies"
    __table_args__ = (
        Index("ix_replies_matched_id", "matched", "id"),  # the Replies page, newest first
        Index("ix_replies_sequence_lesson", "sequence", "lesson"),
    )

    id: Mapped[intpk]
    key: Mapped[str] = mapped_column(String(255), unique=True)
    received_at: Mapped[utc]
    source: Mapped[str] = mapped_column(String(20))  # mailbox, postmark, mailgun, ses
    sender: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")  # the text part, quoted part and all
    matched: Mapped[bool] = mapped_column(default=False)
    note: Mapped[str] = mapped_column(Text, default="")  # why it matched nothing
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
    )
    sequence: Mapped[str | None] = mapped_column(String(100))
    lesson: Mapped[str | None] = mapped_column(String(100))
    holds: Mapped[bool] = mapped_column(default=False)  # paused its reader (`pause_on_reply`)
    done_at: Mapped[utc_or_none]
    done_by: Mapped[str | None] = mapped_column(String(320))
    forwarded_at: Mapped[utc_or_none]  # to site.yaml's `forward_replies_to`


class EngagementDay(Base):
    """Readers of each course in each engagement state on a UTC day: the dashboard's chart
    (drip.audience.engagement writes the day's rows at its first sweep of the day)."""

    __tablename__ = "engagement_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    sequence: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str] = mapped_column(String(10), primary_key=True)
    readers: Mapped[int] = mapped_column(Integer, default=0)


class EngagementSweep(Base):
    """How far the pass's engagement sweep has read: the last timeline event and the time
    of the last sweep (deliveries sent since are the ones it counts)."""

    __tablename__ = "engagement_sweeps"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    swept_at: Mapped[utc_or_none]
