"""Background jobs asked for in the admin: CSV imports of readers and lead-magnet rebuilds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from drip.store.models.columns import Base, intpk, slug, utc, utc_or_none


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
