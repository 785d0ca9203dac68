"""Counts kept by database triggers in the same transaction as each change, so the admin
and /metrics read a few rows instead of counting a million (drip.store.rollups recounts them)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from drip.store.models.columns import Base


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
