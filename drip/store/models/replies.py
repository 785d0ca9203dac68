"""Readers' answers to the messages drip sent (drip.replies)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from drip.store.models.columns import Base, intpk, utc, utc_or_none


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
