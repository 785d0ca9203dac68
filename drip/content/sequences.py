"""A course as data: its lessons, delays, send window and lead magnet, and the problems
found reading it, each at its file and line (drip.content.loader reads them from files)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path

from drip.content.authors import Author

DELAY = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


# "2 days", "1 week", "36 hours", "1 day 12 hours", "90 minutes": what an author writes
DELAY_WORD = re.compile(
    r"(\d+)\s*(weeks?|w|days?|d|hours?|hrs?|h|minutes?|mins?|m)\b", re.IGNORECASE
)
DELAY_WORDS = re.compile(r"^(?:\s*(?:,|and)?\s*\d+\s*[a-z]+)+\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        return f"{self.path}:{self.line}: {prefix}{self.message}"


@dataclass(frozen=True)
class Delay:
    """Days and weeks are calendar days in the reader's time zone; hours and minutes elapse."""

    days: int = 0
    seconds: int = 0

    @property
    def immediate(self) -> bool:
        return self.days == 0 and self.seconds == 0

    @classmethod
    def parse(cls, text: str) -> Delay:
        text = text.strip()
        if text == "0":
            return cls()
        match = DELAY.match(text)
        if match and text:
            weeks, days, hours, minutes = (int(g) if g else 0 for g in match.groups())
            return cls(days=weeks * 7 + days, seconds=hours * 3600 + minutes * 60)
        words = DELAY_WORD.findall(text)
        if words and DELAY_WORDS.match(text) and len(words) == len(re.findall(r"\d+", text)):
            days = seconds = 0
            for number, unit in words:
                first = unit[0].lower()
                if first == "w":
                    days += int(number) * 7
                elif first == "d":
                    days += int(number)
                elif first == "h":
                    seconds += int(number) * 3600
                else:
                    seconds += int(number) * 60
            return cls(days=days, seconds=seconds)
        raise ValueError(
            f"bad delay {text!r}: use 0 or a number with a unit, e.g. 2 days, "
            "1 week, 36 hours (or 2d, 1w, 36h)"
        )

    def __str__(self) -> str:
        if self.immediate:
            return "0"
        parts = [f"{self.days}d"] if self.days else []
        hours, rest = divmod(self.seconds, 3600)
        parts += [f"{hours}h"] if hours else []
        parts += [f"{rest // 60}m"] if rest else []
        return "".join(parts)

    def as_timedelta(self) -> timedelta:
        return timedelta(days=self.days, seconds=self.seconds)


@dataclass(frozen=True)
class SendWindow:
    start: time = time(9, 0)
    end: time = time(17, 0)
    days: frozenset[int] = frozenset(range(7))  # Monday is 0, as in datetime.weekday()


@dataclass(frozen=True)
class LeadMagnet:
    title: str
    source: Path
    attach: bool = False


@dataclass(frozen=True)
class Variant:
    """One alternative of a lesson under test (drip.content.variants): what it changes, the
    rest being the lesson's own. `name` is b or c; the lesson itself is variant a."""

    name: str
    subject: str | None = None
    preheader: str | None = None
    body: str | None = None  # from the sibling file `NN-name.b.md`
    path: Path | None = None  # that file, when the body is its
    version: str = ""  # a hash of the lesson's file and the variant's: a new render


@dataclass(frozen=True)
class Goal:
    """What a lesson's variants are judged on (`goal:` in its front matter), never opens."""

    kind: str  # click, reply, tag, next-lesson-kept
    tag: str = ""  # for `tag:has-dates`

    def __str__(self) -> str:
        return f"tag:{self.tag}" if self.kind == "tag" else self.kind


@dataclass(frozen=True)
class Lesson:
    key: str
    number: int
    path: Path
    subject: str
    delay: Delay
    preheader: str
    body: str
    body_line: int  # line of the file where the Markdown body starts
    version: str  # hash of the file; each delivery records the version it sent
    variants: tuple[Variant, ...] = ()  # the alternatives under test (b, c), if any
    goal: Goal | None = None  # what the variants are judged on
    variant: str = ""  # the arm this is once resolved for a reader: a, b or c


@dataclass(frozen=True)
class Sequence:
    slug: str
    path: Path
    title: str
    promise: str
    sender: str | None
    reply_to: str | None
    timezone: str
    window: SendWindow
    double_opt_in: bool
    consent: str
    lead_magnet: LeadMagnet | None
    signup_fields: tuple[str, ...]
    lessons: tuple[Lesson, ...] = field(default=())
    track_links: bool = False  # lesson links go through /l/<token>, which counts the click
    utm: bool = False  # tracked links get utm_source=drip&utm_medium=email&...
    track_opens: bool = False  # an open pixel: off by default, and opens lie (docs/authoring.md)
    repermission: bool = True  # a quiet reader is asked "Still want these?" (engagement)
    exit_when: str | None = None  # a tag that ends the course early: the reader reached the goal
    on_complete: tuple[str, str] | None = None  # ("enroll" or "offer", the next course's slug)
    continues_from: tuple[str, ...] = ()  # titles of the courses that enroll into this one
    author: Author = field(default_factory=Author)  # site.yaml's, overridden field by field
    privacy_url: str = ""
    after_confirm_url: str = ""  # where the "you're in" page offers to go on to
    pause_on_reply: bool = False  # a reply holds the next lesson until marked done

    def lesson(self, key: str) -> Lesson | None:
        return next((lesson for lesson in self.lessons if lesson.key == key), None)

    def lesson_named(self, name: str) -> Lesson | None:
        """The lesson an author names on the command line: its key (`small-talk`) or its
        file name without `.md` (`02-small-talk`)."""
        return self.lesson(name) or next(
            (item for item in self.lessons if f"{item.number:02d}-{item.key}" == name), None
        )

    def next_lesson(self, sent: set[str] | frozenset[str]) -> Lesson | None:
        """The first lesson, in the current order, that this reader has not had."""
        return next((lesson for lesson in self.lessons if lesson.key not in sent), None)

    def summary(self) -> str:
        magnet = f", lead magnet {self.lead_magnet.source.name}" if self.lead_magnet else ""
        days = sum(lesson.delay.days for lesson in self.lessons)
        return (
            f"{self.slug}: {len(self.lessons)} lessons over about {days} days"
            f"{magnet}, {'double' if self.double_opt_in else 'single'} opt-in"
        )


@dataclass(frozen=True)
class EngagementRules:
    """site.yaml's `engagement:` (drip.audience.engagement): a reader is quiet after
    `quiet_after` deliveries with no action, and gone `gone_after_days` days after an
    unanswered re-permission email."""

    quiet_after: int = 6
    gone_after_days: int = 30


@dataclass
class Library:
    """What `load_sequences` found: usable sequences, and problems by sequence slug."""

    sequences: dict[str, Sequence]
    problems: list[Problem]
    broken: dict[str, list[Problem]]
    # A broken sequence's settings, as far as they could be read: its sign-up form stays up
    # (the sign-ups wait in the queue until it is fixed), though nothing is sent from it.
    held_forms: dict[str, Sequence] = field(default_factory=dict)
    engagement: EngagementRules = field(default_factory=lambda: EngagementRules())

    def get(self, slug: str) -> Sequence | None:
        return self.sequences.get(slug)

    def for_sign_up(self, slug: str) -> Sequence | None:
        """The sequence whose sign-up form to show: a usable one, or a broken one (its
        sign-ups wait); None only when no such sequence exists."""
        return self.sequences.get(slug) or self.held_forms.get(slug)

    def broken_reason(self, slug: str) -> str | None:
        """Why a sequence whose files are there cannot be used, or None if it is not broken.
        (What to say of a sequence that is not there at all depends on who asks.)"""
        if slug not in self.broken:
            return None
        return f"sequence {slug!r} has problems: the admin's Sequences page says what to fix"
