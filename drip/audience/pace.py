"""The reader's pace in one course: pause, slower, away until a date, the next lesson now.

Readers choose it from a lesson's footer or the preferences page (drip.web.public.pace).
Each choice is stored on the enrollment (`slower`, `paused_since`, `resumes_at`), moves
`due_at` through the one due function (drip.content.schedule.next_due), goes on the reader's
timeline as a `PACE_*` event and into the consent record with when and how, and can be undone
(`reset`). Lessons are never skipped, only delayed: the claim takes the reader when `due_at`
comes, and a send counts the next delay at the same pace (drip.dispatch.plan).

A change is one conditional UPDATE that only touches a reader no worker holds right now
(`lease_owner` empty or its lease over), so a pass sending this reader a lesson cannot
overwrite the choice with the due time it worked out before it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.orm import Session

from drip.audience.subscriptions import Consent, record_event
from drip.content.schedule import Pace, into_window, morning_of, next_due, reader_zone
from drip.content.sequences import Sequence
from drip.store.models import ConsentRecord, Enrollment, EnrollmentStatus, EventKind

PAUSES = {"1w": 7, "2w": 14, "back": None}  # the pause lengths offered, in days
PAUSE_WORDS = {"1w": "for a week", "2w": "for two weeks", "back": "until you come back"}
AWAY_LONGEST = timedelta(days=366)  # a date further out is a typo, not a plan
STILL_WANTED_AFTER = timedelta(days=60)
UNPAUSED: dict[str, object] = {
    "paused_since": None,
    "resumes_at": None,
    "pause_kind": None,
}  # a pause this long gets one "still want it?" email


class Choice(enum.StrEnum):
    """What a pace link offers."""

    PAUSE = "pause"
    SLOWER = "slower"
    NOW = "now"
    AWAY = "away"


class PaceError(Exception):
    """The choice cannot be made now; the message says why, in the reader's words."""


@dataclass(frozen=True)
class Change:
    """What a choice did: the words the reader is shown and when the next lesson is due."""

    said: str
    due_at: datetime | None


def pace_of(enrollment: Enrollment, now: datetime) -> Pace:
    """The enrollment's pace at `now` (a pause whose date has passed holds nothing)."""
    paused = paused_at(enrollment, now)
    return Pace(
        slower=enrollment.slower,
        resumes_at=enrollment.resumes_at if paused else None,
        held=paused and enrollment.resumes_at is None,
    )


def paused_at(enrollment: Enrollment, now: datetime) -> bool:
    """Paused by the reader (a pause or an absence) at `now`. A pause until the reader comes
    back has no due time: one given it since (an operator's resume, a rejoin) ended it."""
    if enrollment.paused_since is None:
        return False
    if enrollment.resumes_at is None:
        return enrollment.due_at is None
    return enrollment.resumes_at > now


def holding(now: datetime) -> ColumnElement[bool]:
    """`paused_at` as SQL, for the enrollments whose `paused_since` is set."""
    return or_(
        Enrollment.resumes_at > now,
        and_(Enrollment.resumes_at.is_(None), Enrollment.due_at.is_(None)),
    )


def zone_of(enrollment: Enrollment, sequence: Sequence) -> ZoneInfo:
    return reader_zone(enrollment.subscriber.timezone, sequence.timezone)


def due_at_pace(enrollment: Enrollment, sequence: Sequence, pace: Pace, now: datetime) -> datetime:
    """When the reader's next lesson is due at `pace`: its delay after the last lesson sent,
    by the one due function, never before `now` moved into the window. A retry waiting, or a
    reader who has had nothing yet, keeps the time it has (held back to `pace.resumes_at`)."""
    zone = zone_of(enrollment, sequence)
    lesson = sequence.lesson(enrollment.next_lesson) if enrollment.next_lesson else None
    if lesson is None or enrollment.last_sent_at is None or enrollment.attempts:
        due = enrollment.due_at or now
        if pace.resumes_at is not None:
            due = max(due, pace.resumes_at)
    else:
        due = next_due(enrollment.last_sent_at, lesson.delay, sequence.window, zone, pace)
    return max(due, into_window(now, sequence.window, zone))


def pause(
    session: Session,
    sequence: Sequence,
    enrollment: Enrollment,
    now: datetime,
    length: str,
    how: Consent,
) -> Change:
    """Pause for a week, two weeks, or until the reader comes back ("back")."""
    if length not in PAUSES:
        raise PaceError("choose how long to pause: a week, two weeks, or until you come back")
    days = PAUSES[length]
    zone = zone_of(enrollment, sequence)
    resumes = None
    if days is not None:
        resumes = morning_of(
            now.astimezone(zone).date() + timedelta(days=days), sequence.window, zone
        )
    said = f"Paused {PAUSE_WORDS[length]}"
    return _held(session, sequence, enrollment, now, resumes, said, Choice.PAUSE, how)


def away(
    session: Session,
    sequence: Sequence,
    enrollment: Enrollment,
    now: datetime,
    until: date,
    how: Consent,
) -> Change:
    """Away until `until` (the reader's date): the course resumes the next morning."""
    zone = zone_of(enrollment, sequence)
    today = now.astimezone(zone).date()
    if until < today:
        raise PaceError(f"{until:%-d %B %Y} has passed: choose the last day you are away")
    if until - today > AWAY_LONGEST:
        raise PaceError("choose a date within a year, or pause until you come back")
    resumes = morning_of(until + timedelta(days=1), sequence.window, zone)
    said = f"Away until {until:%A %-d %B}"
    return _held(session, sequence, enrollment, now, resumes, said, Choice.AWAY, how)


def slower(
    session: Session, sequence: Sequence, enrollment: Enrollment, now: datetime, how: Consent
) -> Change:
    """Every delay counted twice: a daily course comes every other send day."""
    pace = Pace(True, pace_of(enrollment, now).resumes_at, pace_of(enrollment, now).held)
    due = None if pace.held else due_at_pace(enrollment, sequence, pace, now)
    said = "Slower: the lessons come half as often"
    _apply(session, enrollment, now, due, slower=True)
    return _recorded(
        session,
        enrollment,
        now,
        EventKind.PACE_SLOWER,
        said,
        due,
        zone_of(enrollment, sequence),
        how,
    )


def next_now(
    session: Session,
    sequence: Sequence,
    enrollment: Enrollment,
    now: datetime,
    right_now: bool,
    how: Consent,
) -> Change:
    """The next lesson in the next pass: inside the send window, or at once if the reader
    pressed it outside the window and said "right now". Ends a pause."""
    due = now if right_now else into_window(now, sequence.window, zone_of(enrollment, sequence))
    _apply(session, enrollment, now, due, **UNPAUSED)
    said = "Next lesson now" + (" (right away)" if right_now else "")
    return _recorded(
        session,
        enrollment,
        now,
        EventKind.PACE_NEXT_NOW,
        said,
        due,
        zone_of(enrollment, sequence),
        how,
    )


def reset(
    session: Session, sequence: Sequence, enrollment: Enrollment, now: datetime, how: Consent
) -> Change:
    """Undo: the course's own pace again, no pause; the next lesson when it is due."""
    due = due_at_pace(enrollment, sequence, Pace(), now)
    _apply(session, enrollment, now, due, slower=False, **UNPAUSED)
    said = "Back to the course's own pace"
    return _recorded(
        session,
        enrollment,
        now,
        EventKind.PACE_RESET,
        said,
        due,
        zone_of(enrollment, sequence),
        how,
    )


def _held(
    session: Session,
    sequence: Sequence,
    enrollment: Enrollment,
    now: datetime,
    resumes: datetime | None,
    said: str,
    kind: Choice,
    how: Consent,
) -> Change:
    """A pause or an absence: held until `resumes` (None: until the reader comes back)."""
    event = EventKind.PACE_AWAY if kind is Choice.AWAY else EventKind.PACE_PAUSED
    pace = Pace(enrollment.slower, resumes, resumes is None)
    due = None if resumes is None else due_at_pace(enrollment, sequence, pace, now)
    _apply(
        session,
        enrollment,
        now,
        due,
        paused_since=now,
        resumes_at=resumes,
        pause_kind=kind.value,
        still_wanted_at=None,
    )
    return _recorded(session, enrollment, now, event, said, due, zone_of(enrollment, sequence), how)


def _apply(
    session: Session, enrollment: Enrollment, now: datetime, due: datetime | None, **values: object
) -> None:
    """The change, if no worker holds the reader; raises PaceError when one does."""
    if enrollment.status != EnrollmentStatus.ACTIVE:
        raise PaceError("this course is not running for you now, so it has no pace to change")
    changed = (
        session.connection()
        .execute(
            update(Enrollment)
            .where(
                Enrollment.id == enrollment.id,
                Enrollment.status == EnrollmentStatus.ACTIVE,
                or_(Enrollment.lease_owner.is_(None), Enrollment.due_at <= now),
            )
            .values(due_at=due, lease_owner=None, **values)
        )
        .rowcount
    )
    if changed != 1:
        raise PaceError("a lesson is on its way to you right now: please try again in a minute")
    session.refresh(enrollment)


def _recorded(
    session: Session,
    enrollment: Enrollment,
    now: datetime,
    kind: EventKind,
    said: str,
    due: datetime | None,
    zone: ZoneInfo,
    how: Consent,
) -> Change:
    """The choice on the timeline and in the consent record: what, when and how."""
    when = "" if due is None else f"; next lesson {when_local(due, zone)}"
    detail = f"{said}{when} (from the {how.source})"
    record_event(session, enrollment, kind, now, detail)
    session.add(
        ConsentRecord(
            subscriber_id=enrollment.subscriber_id,
            enrollment_id=enrollment.id,
            created_at=now,
            source=how.source,
            consent_text=f"{said}{when}",
            ip=how.ip,
            user_agent=how.user_agent,
        )
    )
    return Change(said, due)


def when_local(moment: datetime, zone: ZoneInfo) -> str:
    """A due time as the reader reads it: in their zone, with the zone's name."""
    return f"{moment.astimezone(zone):%A %-d %B at %H:%M} ({zone.key})"
