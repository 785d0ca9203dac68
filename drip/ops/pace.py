"""The readers' pace as operators see it: one reader's pace in words with the dates that
follow from it (the admin's reader page, `drip schedule --reader`), and how many readers of a
course are paused, away or slower (the admin's sequence page)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drip.audience.pace import holding, pace_of, paused_at, zone_of
from drip.content.schedule import timeline
from drip.content.sequences import Lesson, Sequence
from drip.store.models import Enrollment, EnrollmentStatus


@dataclass(frozen=True)
class PaceView:
    """One reader's pace in a course: in words, and when each lesson left would land."""

    words: str
    zone: ZoneInfo
    upcoming: list[tuple[Lesson, datetime]] = field(default_factory=list)


def reader_pace(enrollment: Enrollment, sequence: Sequence, now: datetime) -> PaceView:
    zone = zone_of(enrollment, sequence)
    pace = pace_of(enrollment, now)
    parts = []
    if paused_at(enrollment, now):
        how = "away" if enrollment.pause_kind == "away" else "paused"
        since = f"{enrollment.paused_since:%Y-%m-%d}" if enrollment.paused_since else "?"
        until = (
            f"until {pace.resumes_at.astimezone(zone):%a %Y-%m-%d %H:%M %Z}"
            if pace.resumes_at
            else "until they come back"
        )
        parts.append(f"{how} by the reader since {since}, {until}")
    if pace.slower:
        parts.append("slower (each delay counted twice)")
    words = "; ".join(parts) or "the course's own pace"
    if enrollment.status != EnrollmentStatus.ACTIVE or enrollment.due_at is None or pace.held:
        return PaceView(words, zone)
    keys = [lesson.key for lesson in sequence.lessons]
    if enrollment.next_lesson not in keys:
        return PaceView(words, zone)
    left = sequence.lessons[keys.index(enrollment.next_lesson) :]
    later = timeline(left[1:], enrollment.due_at, sequence.window, zone, pace)
    return PaceView(words, zone, [(left[0], enrollment.due_at), *later])


def pace_counts(session: Session, slug: str, now: datetime) -> dict[str, int]:
    """Readers of `slug` still in the course who paused it, are away, or chose slower."""
    active = (Enrollment.sequence == slug, Enrollment.status == EnrollmentStatus.ACTIVE)
    counts = {"paused": 0, "away": 0, "slower": 0}
    for kind, number in session.execute(
        select(Enrollment.pause_kind, func.count())
        .where(*active, Enrollment.paused_since.is_not(None), holding(now))
        .group_by(Enrollment.pause_kind)
    ):
        counts["away" if kind == "away" else "paused"] += int(number)
    counts["slower"] = int(
        session.scalar(select(func.count()).where(*active, Enrollment.slower.is_(True))) or 0
    )
    return counts
