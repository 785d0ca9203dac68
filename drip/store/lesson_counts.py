"""Per-lesson counts of one course for the sequence's page ("why hasn't the next lesson
gone out?"): who falls due at each lesson soon, and where readers left."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drip.store.models import Enrollment, EnrollmentStatus


def due_by_lesson(session: Session, slug: str, now: datetime, until: datetime) -> Counter[str]:
    """Active readers of `slug` whose next lesson falls due between `now` and `until`, per
    lesson: a range of the (status, due_at) index."""
    return Counter(
        {
            str(lesson): int(number)
            for lesson, number in session.execute(
                select(Enrollment.next_lesson, func.count())
                .where(
                    Enrollment.status == EnrollmentStatus.ACTIVE,
                    Enrollment.due_at >= now,
                    Enrollment.due_at < until,
                    Enrollment.sequence == slug,
                )
                .group_by(Enrollment.next_lesson)
            )
            if lesson
        }
    )


def left_before_lesson(session: Session, slug: str) -> Counter[str]:
    """Readers who unsubscribed from `slug` while each lesson was their next (where they
    dropped off): the (sequence, status) range of an index, as large as the answer."""
    return Counter(
        {
            str(lesson): int(number)
            for lesson, number in session.execute(
                select(Enrollment.next_lesson, func.count())
                .where(
                    Enrollment.sequence == slug,
                    Enrollment.status == EnrollmentStatus.UNSUBSCRIBED,
                )
                .group_by(Enrollment.next_lesson)
            )
            if lesson
        }
    )
