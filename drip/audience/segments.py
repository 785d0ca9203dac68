"""Segments: a saved filter of readers, by name, that broadcasts and exports take.

A definition is a JSON object; every key is optional and they all must hold (AND):

    {"sequences": ["interview-questions"],   # enrolled in one of these
     "status": ["active", "completed"],       # that enrollment's status (or any course's)
     "tags": ["has-dates"],                   # has at least one of these tags
     "without_tags": ["booked-a-call"],       # has none of these
     "exam_before": "2026-09-01",             # sign-up answer: exam strictly before this day
     "exam_after": "2026-06-01",              # ... strictly after this day
     "responsibilities": ["1", "2+"],         # sign-up answer: one of these
     "clicked_within_days": 30,               # a reader's click (not a scanner's) lately
     "no_click_within_days": 90,              # no such click in the last N days
     "lesson_within_days": 7,                 # got a lesson in the last N days
     "no_lesson_within_days": 60,             # got none in the last N days
     "engagement": ["quiet", "gone"]}         # engaged, quiet or gone (drip.audience.engagement)

`compile_segment` turns it into one SELECT of subscriber ids that the database evaluates
with its indexes (tags: `ix_subscriber_tags_tag`; the exam date: the expression index of
migration 0017, which is why `exam_date` below spells the expression exactly as the index
does; clicks: `ix_link_clicks_at`; lessons: `ix_deliveries_sent_at`); nothing here loops
over readers in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal_column, select
from sqlalchemy.orm import Session

from drip.audience.signup import RESPONSIBILITIES
from drip.audience.tags import TagError, clean_tag
from drip.store.filters import Filters
from drip.store.models import (
    Delivery,
    Engagement,
    Enrollment,
    EnrollmentStatus,
    LinkClick,
    Segment,
    Subscriber,
    SubscriberTag,
)

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
LISTS = ("sequences", "status", "tags", "without_tags", "responsibilities", "engagement")
DAYS = ("exam_before", "exam_after")
WITHIN = (
    "clicked_within_days",
    "no_click_within_days",
    "lesson_within_days",
    "no_lesson_within_days",
)
KEYS = (*LISTS, *DAYS, *WITHIN)
STATUSES = tuple(status.value for status in EnrollmentStatus)
STATES = tuple(state.value for state in Engagement)
# The expression each dialect's index (migration 0017) is built on, character for character.
EXAM_DATE = {
    "sqlite": "json_extract(subscribers.attributes, '$.exam_date')",
    "postgresql": "(subscribers.attributes ->> 'exam_date')",
}
SHOWN = 5


class SegmentError(ValueError):
    """A definition or name that is not one; each problem names the field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Members:
    count: int
    first: list[str]  # the first few addresses, by id


def clean_name(raw: str) -> str:
    name = raw.strip().lower()
    if not NAME.match(name):
        raise SegmentError(
            [f"name: {raw!r} is not a segment name: lowercase letters, digits and dashes"]
        )
    return name


def parse(raw: Any, known_sequences: frozenset[str] | None = None) -> dict[str, Any]:
    """The definition, checked and normalised (sorted keys, lists without repeats); raises
    SegmentError listing every field that is wrong and why. With `known_sequences`, a
    sequence that does not exist is refused too."""
    if not isinstance(raw, dict):
        raise SegmentError(['the definition is a JSON object, e.g. {"tags": ["has-dates"]}'])
    problems: list[str] = []
    clean: dict[str, Any] = {}
    for key in sorted(set(raw) - set(KEYS)):
        problems.append(f"{key}: not a segment field (fields: {', '.join(KEYS)})")
    for key in LISTS:
        if key not in raw or raw[key] in (None, [], ""):
            continue
        value = [raw[key]] if isinstance(raw[key], str) else raw[key]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            problems.append(f"{key}: a list of strings")
            continue
        items = list(dict.fromkeys(item.strip() for item in value if item.strip()))
        problems += _check_list(key, items, known_sequences)
        if key in ("tags", "without_tags"):
            items = [item.lower() for item in items]
        clean[key] = items
    for key in DAYS:
        if raw.get(key) in (None, ""):
            continue
        try:
            clean[key] = date.fromisoformat(str(raw[key]).strip()).isoformat()
        except ValueError:
            problems.append(f"{key}: {raw[key]!r} is not a day such as 2026-09-15")
    for key in WITHIN:
        if raw.get(key) in (None, ""):
            continue
        value = raw[key]
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
            problems.append(f"{key}: a whole number of days from 1 to 3650, not {raw[key]!r}")
            continue
        clean[key] = value
    if (
        "exam_before" in clean
        and "exam_after" in clean
        and clean["exam_after"] >= clean["exam_before"]
    ):
        problems.append("exam_after: must be before exam_before, or no reader can match")
    if problems:
        raise SegmentError(problems)
    return dict(sorted(clean.items()))


def _check_list(key: str, items: list[str], known: frozenset[str] | None) -> list[str]:
    if key == "status":
        wrong = [item for item in items if item not in STATUSES]
        return [f"status: {w!r} is not a status ({', '.join(STATUSES)})" for w in wrong]
    if key == "engagement":
        wrong = [item for item in items if item not in STATES]
        return [f"engagement: {w!r} is not a state ({', '.join(STATES)})" for w in wrong]
    if key == "responsibilities":
        wrong = [item for item in items if item not in RESPONSIBILITIES]
        return [
            f"responsibilities: {w!r} is not an answer ({', '.join(RESPONSIBILITIES)})"
            for w in wrong
        ]
    if key in ("tags", "without_tags"):
        problems = []
        for item in items:
            try:
                clean_tag(item)
            except TagError as error:
                problems.append(f"{key}: {error}")
        return problems
    if known is not None:
        return [
            f"sequences: no sequence {item!r} (known: {', '.join(sorted(known)) or 'none'})"
            for item in items
            if item not in known
        ]
    return []


def exam_date(dialect: str) -> ColumnElement[Any]:
    """The reader's exam date as ISO text, spelled as the expression index is."""
    return literal_column(EXAM_DATE.get(dialect, EXAM_DATE["sqlite"]))


def compile_segment(definition: dict[str, Any], dialect: str, now: datetime) -> Select[int]:
    """One SELECT of the ids of the readers the (parsed) definition matches. Each condition
    is `id IN (ids found through an index)`, not a correlated EXISTS, so SQLite too starts
    from the tag, the click time or the send time instead of probing every reader."""
    where: list[ColumnElement[bool]] = []
    sequences, statuses = definition.get("sequences"), definition.get("status")
    if sequences or statuses:
        enrolled = select(Enrollment.subscriber_id)
        if sequences:
            enrolled = enrolled.where(Enrollment.sequence.in_(sequences))
        if statuses:
            enrolled = enrolled.where(Enrollment.status.in_(statuses))
        where.append(Subscriber.id.in_(enrolled))
    if definition.get("tags"):
        where.append(Subscriber.id.in_(_tagged(definition["tags"])))
    if definition.get("without_tags"):
        where.append(Subscriber.id.not_in(_tagged(definition["without_tags"])))
    if definition.get("exam_before"):
        where.append(exam_date(dialect) < definition["exam_before"])
    if definition.get("exam_after"):
        where.append(exam_date(dialect) > definition["exam_after"])
    if definition.get("responsibilities"):
        answer = Subscriber.attributes["responsibilities"].as_string()
        where.append(answer.in_(definition["responsibilities"]))
    if definition.get("engagement"):  # ix_subscribers_engagement_id
        where.append(Subscriber.engagement.in_(definition["engagement"]))
    if definition.get("clicked_within_days"):
        since = now - timedelta(days=definition["clicked_within_days"])
        where.append(Subscriber.id.in_(_clicked(since)))
    if definition.get("no_click_within_days"):
        since = now - timedelta(days=definition["no_click_within_days"])
        where.append(Subscriber.id.not_in(_clicked(since)))
    if definition.get("lesson_within_days"):
        since = now - timedelta(days=definition["lesson_within_days"])
        where.append(Subscriber.id.in_(_got_lesson(since)))
    if definition.get("no_lesson_within_days"):
        since = now - timedelta(days=definition["no_lesson_within_days"])
        where.append(Subscriber.id.not_in(_got_lesson(since)))
    return select(Subscriber.id).where(*where)


def _tagged(tags: list[str]) -> Select[int]:
    """From `ix_subscriber_tags_tag`."""
    return select(SubscriberTag.subscriber_id).where(SubscriberTag.tag.in_(tags))


def _clicked(since: datetime) -> Select[int]:
    """Readers with a counted click (a reader's, not a scanner's) on a tracked link since
    then, from `ix_link_clicks_at`."""
    return (
        select(Enrollment.subscriber_id)
        .join(LinkClick, LinkClick.enrollment_id == Enrollment.id)
        .where(LinkClick.at >= since, LinkClick.counted.is_(True), LinkClick.link_index >= 0)
    )


def _got_lesson(since: datetime) -> Select[int]:
    """Readers sent a lesson since then, from `ix_deliveries_sent_at`."""
    return (
        select(Enrollment.subscriber_id)
        .join(Delivery, Delivery.enrollment_id == Enrollment.id)
        .where(Delivery.sent_at >= since)
    )


def named(session: Session, name: str) -> Segment:
    """The segment of that name; SegmentError naming the known ones if there is none."""
    found = session.scalar(select(Segment).where(Segment.name == name.strip().lower()))
    if found is None:
        known = ", ".join(session.scalars(select(Segment.name).order_by(Segment.name))) or "none"
        raise SegmentError([f"segment: no segment named {name!r} (known: {known})"])
    return found


def ids_of(session: Session, name: str, now: datetime) -> Select[int]:
    """The SELECT of the readers in the segment `name`, to use inside another query."""
    segment = named(session, name)
    return compile_segment(parse(segment.definition), session.get_bind().dialect.name, now)


def enrollment_conditions(
    definition: dict[str, Any], dialect: str, now: datetime
) -> tuple[ColumnElement[bool], ...]:
    """The readers list's rows a segment selects: the enrollments of its readers, and of
    those, when it names sequences or statuses, only the enrollments that put the reader in
    it. So the list (and a bulk action, and the filtered export) with a segment made from
    `?sequence=tiny&status=active` shows the rows that filter shows, not also the readers'
    other courses."""
    reader: ColumnElement[int] = Enrollment.subscriber_id.expression
    if dialect == "sqlite":
        # `+ 0` keeps SQLite from driving the list from the segment's ids through the
        # subscriber_id index and sorting them all for one page: it walks enrollments by id
        # and looks each up in the segment's ids, materialised once (bench/segments.py).
        reader = reader + 0
    conditions: list[ColumnElement[bool]] = [reader.in_(compile_segment(definition, dialect, now))]
    if definition.get("sequences"):
        conditions.append(Enrollment.sequence.in_(definition["sequences"]))
    if definition.get("status"):
        conditions.append(Enrollment.status.in_(definition["status"]))
    return tuple(conditions)


def narrowed(session: Session, filters: Filters, now: datetime) -> Filters:
    """The readers list's filters with their segment (a name) turned into its conditions
    as of `now`; SegmentError if there is no such segment."""
    if not filters.segment:
        return replace(filters, segment_conditions=())
    segment = named(session, filters.segment)
    conditions = enrollment_conditions(
        parse(segment.definition), session.get_bind().dialect.name, now
    )
    return replace(filters, segment=segment.name, segment_conditions=conditions)


def count(session: Session, definition: dict[str, Any], now: datetime) -> int:
    """How many readers match, counted by the database."""
    ids = compile_segment(definition, session.get_bind().dialect.name, now)
    return int(session.scalar(select(func.count()).select_from(ids.subquery())) or 0)


def members(session: Session, definition: dict[str, Any], now: datetime) -> Members:
    """How many readers match, and the first few addresses: two small queries, counted and
    limited by the database."""
    ids = compile_segment(definition, session.get_bind().dialect.name, now).subquery()
    total = session.scalar(select(func.count()).select_from(ids)) or 0
    first = session.scalars(
        select(Subscriber.email)
        .where(Subscriber.id.in_(select(ids.c.id)))
        .order_by(Subscriber.id)
        .limit(SHOWN)
    ).all()
    return Members(int(total), list(first))


def save(
    session: Session,
    name: str,
    raw: Any,
    now: datetime,
    who: str,
    known_sequences: frozenset[str] | None = None,
    *,
    replace: bool = False,
) -> Segment:
    """Create (or with `replace`, change) the segment; the caller commits."""
    name = clean_name(name)
    definition = parse(raw, known_sequences)
    found = session.scalar(select(Segment).where(Segment.name == name))
    if found is not None and not replace:
        raise SegmentError([f"name: a segment named {name!r} exists (replace it or pick another)"])
    if found is None:
        found = Segment(name=name, created_at=now, created_by=who[:320])
        session.add(found)
    found.definition = definition
    session.flush()
    return found


def from_filters(filters: Filters) -> dict[str, Any]:
    """The definition that selects what the readers list's sequence, status and tag filter
    selects (the address search is not a segment field)."""
    raw = {
        "sequences": filters.sequence,
        "status": filters.status,
        "tags": filters.tag,
        "engagement": filters.engagement,
    }
    if not any(raw.values()):
        raise SegmentError(["filter: choose a sequence, a status, a tag or a state to save"])
    return parse({key: [value] for key, value in raw.items() if value})


def _or(values: list[str]) -> str:
    return " or ".join(values) if len(values) < 3 else f"{', '.join(values[:-1])} or {values[-1]}"


def in_words(definition: dict[str, Any]) -> str:
    """The definition as a person says it: "readers of interview-questions, active, tagged
    has-dates, exam before 2026-09-01"."""
    d = definition
    if not d:
        return "every reader"
    days = {
        "clicked_within_days": "clicked a link in the last {} days",
        "no_click_within_days": "no click in the last {} days",
        "lesson_within_days": "got a lesson in the last {} days",
        "no_lesson_within_days": "no lesson in the last {} days",
    }
    parts = [
        f"readers of {_or(d['sequences'])}" if d.get("sequences") else "readers of any course",
        _or(d["status"]) if d.get("status") else "",
        f"tagged {_or(d['tags'])}" if d.get("tags") else "",
        f"not tagged {_or(d['without_tags'])}" if d.get("without_tags") else "",
        f"exam after {d['exam_after']}" if d.get("exam_after") else "",
        f"exam before {d['exam_before']}" if d.get("exam_before") else "",
        f"responsibilities {_or(d['responsibilities'])}" if d.get("responsibilities") else "",
        *(text.format(d[key]) for key, text in days.items() if d.get(key)),
        _or(d["engagement"]) if d.get("engagement") else "",
    ]
    return ", ".join(part for part in parts if part)


def describe(definition: dict[str, Any]) -> str:
    """One line for people: what the segment holds."""
    if not definition:
        return "every reader"
    return "; ".join(
        f"{key}: {', '.join(value) if isinstance(value, list) else value}"
        for key, value in definition.items()
    )
