"""The USMLE kit's study schedule, worked backwards from the reader's exam date.

The rules come from the article the kit is offered under ("How to score 240+ on all USMLE"):

- months of preparation by other responsibilities: 6 with none, 7 with one, 8-9 with more;
- about 30% of the time on theory (two reads, the second quicker), 70% on question banks;
- half of the questions subject by subject, then half mixed, the mixed half quicker;
- 3-4 blocks a day under exam conditions;
- the last week on marked questions and highlighted material, the last day off.

Where the article gives no number, the plan uses the split of the kit's template table
(sequences/usmle-insider-kit/magnet.md): the second read takes 3/8 of the theory time
(5 weeks then 3), and the mixed half of the questions 7/17 of the question time (10 weeks
then 7). The computed table replaces the template after the `<!-- schedule -->` marker.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

SCHEDULE_MARKER = "<!-- schedule -->"
NBSP = "\u00a0"
THEORY_SHARE = 0.30
FIRST_READ_SHARE = 5 / 8
SUBJECT_WISE_SHARE = 10 / 17
LAST_WEEK_DAYS = 6  # the week before the exam: six days of marked questions, then the day off
SHORT_PLAN_DAYS = 14  # below this there is no room for theory and question-bank phases


def months_for(responsibilities: int) -> int:
    """Months of preparation for 0, 1, or 2 (meaning two or more) other responsibilities.

    The article gives 8-9 months for more than one responsibility. The sign-up form cannot
    tell two responsibilities from five, so the plan takes the top of the range: it is still
    inside what the article recommends, and the reader with the most on their plate is not
    the one left short of time.
    """
    return {0: 6, 1: 7}.get(responsibilities, 9)


def responsibilities_from(value: Any) -> int | None:
    """The sign-up form's answer ("0", "1", "2" or "2+") as 0, 1 or 2; None if not given."""
    text = str(value if value is not None else "").strip().rstrip("+")
    if not text.isdigit():
        return None
    return min(int(text), 2)


def exam_date_from(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value).strip()) if value else None
    except ValueError:
        return None


def months_before(day: date, months: int) -> date:
    """The same day of the month `months` earlier (the month's last day if it is shorter)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def months_after(day: date, months: int) -> date:
    """The same day of the month `months` later (the month's last day if it is shorter)."""
    return months_before(day, -months)


def _round(value: float) -> int:
    return int(value + 0.5)


@dataclass(frozen=True)
class Phase:
    name: str
    start: date
    end: date  # inclusive
    what: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class StudyPlan:
    exam_date: date
    responsibilities: int | None  # None: the reader did not say; planned as none
    months: int
    full_start: date  # where the full plan starts
    start: date  # where this plan starts: later than full_start when compressed
    phases: tuple[Phase, ...]

    @property
    def compressed(self) -> bool:
        return self.start > self.full_start

    @property
    def days(self) -> int:
        return (self.exam_date - self.start).days

    @property
    def earliest_full_exam(self) -> date:
        """The first exam date that leaves the full plan's months from this plan's start."""
        return months_after(self.start, self.months)


PHASE_TEXT = {
    "first": (
        "Theory: first read",
        "Go through every subject slowly. Aim to understand the concepts rather than "
        "memorize them; take notes if that is how you learn.",
    ),
    "second": (
        "Theory: second read",
        "A faster pass over every subject. The two reads together are about 30% of your time.",
    ),
    "subject": (
        "Question banks: subject-wise half",
        "Half of your questions, one subject at a time, rereading each subject's "
        "theory as you go. Build from 1–2 blocks a day to 3–4, each under exam "
        "conditions and followed by a full review of the explanations.",
    ),
    "mixed": (
        "Question banks: mixed half",
        "The other half of your questions in mixed blocks, 3–4 a day under exam "
        "conditions. Mark the questions you get wrong.",
    ),
    "final": (
        "Marked questions and highlights",
        "Your marked questions, above all the kind you tend to miss, and the "
        "highlighted parts of your material or a short study guide.",
    ),
    "last": (
        "Last week",
        "Your marked questions, above all the kind you tend to miss, and the "
        "highlighted parts of your material or a short study guide.",
    ),
    "off": ("Last day", "No studying: rest, see friends, enjoy a film. Sleep well."),
}


def _lengths(total: int) -> list[tuple[str, int]]:
    """Days per phase, in order, for `total` days from the start to the day before the exam."""
    if total < SHORT_PLAN_DAYS:
        return [("final", max(total - 1, 0)), ("off", min(total, 1))]
    theory = _round(THEORY_SHARE * total)
    first = _round(theory * FIRST_READ_SHARE)
    questions = total - theory - LAST_WEEK_DAYS - 1
    subject = _round(questions * SUBJECT_WISE_SHARE)
    return [
        ("first", first),
        ("second", theory - first),
        ("subject", subject),
        ("mixed", questions - subject),
        ("last", LAST_WEEK_DAYS),
        ("off", 1),
    ]


def plan_for(exam_date: date, responsibilities: int | None, today: date) -> StudyPlan:
    """The plan for an exam on `exam_date`, starting no earlier than `today`.

    The full plan starts `months_for(responsibilities)` months before the exam. When that is
    already past, every phase is shortened in the same proportions to fit the days left, the
    last week and the day off kept whole; with under two weeks left only those remain.
    """
    months = months_for(responsibilities or 0)
    full_start = months_before(exam_date, months)
    start = max(full_start, today)
    phases = []
    moment = start
    for key, days in _lengths((exam_date - start).days):
        if days <= 0:
            continue
        name, what = PHASE_TEXT[key]
        phases.append(Phase(name, moment, moment + timedelta(days=days - 1), what))
        moment += timedelta(days=days)
    return StudyPlan(exam_date, responsibilities, months, full_start, start, tuple(phases))


def plan_from_attributes(attributes: Mapping[str, Any], today: date) -> StudyPlan | None:
    """The reader's plan from their sign-up answers; None without a usable future exam date."""
    exam = exam_date_from(attributes.get("exam_date"))
    if exam is None or exam <= today:
        return None
    return plan_for(exam, responsibilities_from(attributes.get("responsibilities")), today)


def day(value: date) -> str:
    return f"{value:%a} {value.day} {value:%b %Y}"


def _length(days: int) -> str:
    if days < 14:
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{days} days (about {_round(days / 7)} weeks)"


WHO = {
    None: "you did not say how many other responsibilities you have, so it assumes none",
    0: "the USMLE is your only responsibility",
    1: "you have one other responsibility",
    2: "you have two or more other responsibilities",
}


def schedule_markdown(plan: StudyPlan) -> str:
    """The reader's schedule: a sentence on how it was set, the table, and a note if shortened."""
    lines = [
        f"**Your exam: {day(plan.exam_date)}.** The full plan is {plan.months} months, "
        f"because {WHO[plan.responsibilities]}. Yours starts on {day(plan.start)}.",
        "",
    ]
    if plan.compressed:
        lines += [
            f"**Your plan is shortened.** The full {plan.months}-month plan would have "
            f"started on {day(plan.full_start)}, which has passed. From "
            f"{day(plan.start)} you have {plan.days} days, so "
            + (
                "each phase is shortened in the same proportions, with the last week "
                "and the day off kept whole."
                if len(plan.phases) > 2
                else "there is only room for your marked questions and the day off."
            ),
            "",
        ]
        lines += [
            f"**Too little time hurts.** The article this kit is built on warns against "
            f"giving an exam too little time, just as it warns against too much. If you "
            f"can still move your exam date, think about moving it to "
            f"{day(plan.earliest_full_exam)} or later: that gives you the full "
            f"{plan.months} months from {day(plan.start)}. If you cannot, follow this "
            f"shortened plan and stick to it.",
            "",
        ]
    lines += ["| Phase | Dates | Length | What you do |", "| --- | --- | --- | --- |"]
    for phase in plan.phases:
        start, end = (day(moment).replace(" ", NBSP) for moment in (phase.start, phase.end))
        dates = start if phase.days == 1 else f"{start} – {end}"  # a date never splits
        lines.append(f"| {phase.name} | {dates} | {_length(phase.days)} | {phase.what} |")
    return "\n".join(lines) + "\n"


def replace_schedule(markdown: str, replacement: str) -> str:
    """`markdown` with the table after the schedule marker replaced by `replacement`."""
    head, marker, tail = markdown.partition(SCHEDULE_MARKER)
    if not marker:
        return markdown
    lines = tail.split("\n")
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1
    while index < len(lines) and lines[index].lstrip().startswith("|"):
        index += 1
    return head + marker + "\n\n" + replacement + "\n".join(lines[index:])
