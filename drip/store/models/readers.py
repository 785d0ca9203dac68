"""Readers and their path through a course.

A sign-up arrives as a `SignUpRequest`; taken in, it becomes a `Subscriber` (with a
`ConsentRecord`) with an `Enrollment` per sequence that says which lesson is next and when it
is due, and each lesson sent is a `Delivery` row, written before the SMTP hand-off and updated
after it. The reader's timeline (`Event`), tags, and one-off messages (`LinkRequest`) too."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from drip.store.models.columns import Base, StrEnumType, UTCDateTime, intpk, slug, utc, utc_or_none


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
        # Readers paused long ago, to ask if they still want the course (migration 0032):
        # only paused enrollments are in it.
        Index(
            "ix_enrollments_paused_since",
            "paused_since",
            sqlite_where=text("paused_since IS NOT NULL"),
            postgresql_where=text("paused_since IS NOT NULL"),
        ),
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


class SubscriberTag(Base):
    """A tag on a reader (from a form, a link, the admin or the API), and where it came from."""

    __tablename__ = "subscriber_tags"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)
    created_at: Mapped[utc]
    source: Mapped[str] = mapped_column(String(200), default="")


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
