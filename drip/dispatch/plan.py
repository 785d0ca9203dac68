"""Plan: what one claimed reader gets, decided from the reader, the content and `now` alone.

A pure function (no database, no clock, no SMTP), so the dry run and a real pass run the
very same decision and cannot disagree: the real pass carries the plan out (drip.dispatch.send),
the dry run only reports it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from drip.content.schedule import next_due, reader_zone
from drip.content.sequences import Lesson, Library, Sequence
from drip.content.variants import resolve
from drip.dispatch.claim import Claimed
from drip.dispatch.report import Kind, Outcome, OutcomeStatus
from drip.store.models import EnrollmentStatus

CONFIRM = "confirm"  # the lesson name of the confirmation email
NO_LESSON = "-"
HOLD = timedelta(minutes=15)  # how long a reader waits when their sequence cannot be read


class Verdict(enum.StrEnum):
    """How a claimed reader is settled without a message."""

    COMPLETED = "completed"  # every lesson has gone out
    HELD = "held"  # the sequence cannot be read: wait, skip nothing
    SUPPRESSED = "suppressed"  # the address is blocked
    UNSENDABLE = "unsendable"  # an address SMTP cannot carry: set aside for the operator


SETTLED_AS = {
    Verdict.COMPLETED: OutcomeStatus.COMPLETED,
    Verdict.HELD: OutcomeStatus.HELD,
    Verdict.SUPPRESSED: OutcomeStatus.SUPPRESSED,
    Verdict.UNSENDABLE: OutcomeStatus.FAILED,
}


@dataclass(frozen=True)
class Send:
    """Send `lesson` (None: the confirmation email) to the reader."""

    claimed: Claimed
    sequence: Sequence
    lesson: Lesson | None
    lesson_key: str  # the lesson's key, or CONFIRM
    following: Lesson | None = None  # the lesson after this one, if any

    @property
    def after(self) -> str | None:
        return self.following.key if self.following else None

    def after_due(self, handed_off: datetime) -> datetime | None:
        """When the following lesson falls due: its delay counted from the moment this one
        was handed over (not from the pass's start), moved into the send window, at the
        reader's pace."""
        if self.following is None:
            return None
        zone = reader_zone(self.claimed.timezone, self.sequence.timezone)
        return next_due(
            handed_off, self.following.delay, self.sequence.window, zone, self.claimed.pace
        )

    @property
    def immediate(self) -> bool:
        """A message with no delay (the confirmation, a welcome) is not held for the window."""
        return self.lesson is None or self.lesson.delay.immediate

    @property
    def attach_magnet(self) -> bool:
        """The welcome lesson carries the reader's PDF with `attach: true`."""
        magnet = self.sequence.lead_magnet
        return (
            self.lesson is not None
            and magnet is not None
            and magnet.attach
            and self.lesson.key == self.sequence.lessons[0].key  # the reader's variant of it
        )

    def outcome(
        self,
        status: OutcomeStatus,
        detail: str = "",
        relay_down: bool = False,
        throttled: bool = False,
    ) -> Outcome:
        return _outcome(self.claimed, self.lesson_key, status, detail, relay_down, throttled)


@dataclass(frozen=True)
class Settle:
    """No message: settle the reader as `verdict` says."""

    claimed: Claimed
    verdict: Verdict
    lesson_key: str  # the message that was due, for the report
    reason: str = ""
    hold_until: datetime | None = None  # HELD: when to look again

    def outcome(self) -> Outcome:
        return _outcome(self.claimed, self.lesson_key, SETTLED_AS[self.verdict], self.reason)


Plan = Send | Settle


def plan(claimed: Claimed, library: Library, now: datetime, *, sequences_dir: Path) -> Plan:
    """What `claimed` gets at `now`: a message to send, or how to settle them."""
    sequence = library.get(claimed.sequence)
    pending = claimed.status == EnrollmentStatus.PENDING
    lesson = sequence.next_lesson(claimed.sent) if sequence and not pending else None
    key = (
        CONFIRM
        if pending
        else lesson.key
        if lesson
        else NO_LESSON
        if sequence
        else claimed.next_lesson or NO_LESSON
    )
    if claimed.suppressed:
        return Settle(claimed, Verdict.SUPPRESSED, key, "address is suppressed")
    if sequence is None:
        reason = (
            library.broken_reason(claimed.sequence)
            or f"sequence {claimed.sequence!r} does not exist in {sequences_dir}"
        )
        return Settle(claimed, Verdict.HELD, key, reason, hold_until=now + HOLD)
    if not pending and lesson is None:
        gone = claimed.next_lesson
        if gone is not None and sequence.lesson(gone) is None:
            # Its file vanished (a folder being deleted or copied over): completing the
            # reader would end the course for good; hold them until it is back.
            return Settle(
                claimed, Verdict.HELD, gone, lesson_gone(sequence, gone), hold_until=now + HOLD
            )
        return Settle(claimed, Verdict.COMPLETED, key)
    if not claimed.reader.email.isascii():
        return Settle(
            claimed,
            Verdict.UNSENDABLE,
            key,
            f"{claimed.reader.email} has non-ASCII characters; sending to it needs "
            "SMTPUTF8, which drip does not use: correct the address and resume",
        )
    if lesson is None:
        return Send(claimed, sequence, None, key)
    following = sequence.next_lesson(claimed.sent | {lesson.key})
    mine = resolve(lesson, claimed.reader.subscriber_id, sequence.slug)  # experiments: a, b, c
    return Send(claimed, sequence, mine, key, following)


def lesson_gone(sequence: Sequence, key: str) -> str:
    """Why a reader whose next lesson has no file any more is held, not completed."""
    return (
        f"lesson {key!r}, next for this reader, is no longer in {sequence.path}: "
        "the reader waits and goes on once its file is back; if it was removed on purpose, "
        "pause and resume the reader to complete the course"
    )


def _outcome(
    claimed: Claimed,
    lesson: str,
    status: OutcomeStatus,
    detail: str,
    relay_down: bool = False,
    throttled: bool = False,
) -> Outcome:
    return Outcome(
        claimed.enrollment_id,
        claimed.reader.email,
        claimed.sequence,
        lesson,
        status,
        detail,
        relay_down,
        throttled,
        Kind.CONFIRMATION if lesson == CONFIRM else Kind.LESSON,
    )
