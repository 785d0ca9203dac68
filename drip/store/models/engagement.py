"""What readers do: tracked clicks, and the engagement sweep's cursor and per-day chart
(drip.audience.engagement)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from drip.store.models.columns import Base, intpk, slug, utc, utc_or_none


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
    of the last sweep (deliveries sent since are the ones it counts), and the event it
    started after (nothing before it is read)."""

    __tablename__ = "engagement_sweeps"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    swept_at: Mapped[utc_or_none]
    started_id: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
