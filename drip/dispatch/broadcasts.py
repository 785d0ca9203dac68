"""Broadcasts: one email to the readers of one or more courses, written as a Markdown file
with front matter like a lesson's, plus its audience:

    ---
    subject: "A new post: the interview day, hour by hour"
    preheader: "What happens from the hotel lobby to the thank-you note."
    to: [interview-questions, networking-tips]
    readers: both          # active, completed, or both (the default)
    tags: [has-dates]      # optional: only readers with one of these tags
    segment: exam-soon     # optional: only the readers of this segment (drip.audience.segments)
    engagement: engaged    # engaged readers only (the default), or all (quiet ones too)
    ---

Scheduling (`schedule`) writes one recipient row per reader, due at the first opening of
their send window at or after the broadcast's time, in their time zone, with one INSERT ...
SELECT (drip.dispatch.broadcast_schedule); the dispatch pass
sends each reader's copy (drip.dispatch.broadcast_copies) with every guarantee a lesson has. Never
to a reader who left everything, is suppressed, asked for no more broadcasts, never
confirmed, or is gone (drip.audience.engagement).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from sqlalchemy import Select, exists, func, select, update
from sqlalchemy.orm import Session

from drip.audience import segments
from drip.audience.leaving import unsubscribe
from drip.audience.subscriptions import normalize_email
from drip.audience.tags import TagError, clean_tag
from drip.content.front_matter import FrontMatterError, parse_front_matter
from drip.content.lessons import check_variables
from drip.content.sequences import Library, Problem, Sequence
from drip.dispatch.broadcast_schedule import write_recipients
from drip.dispatch.broadcast_variants import read_test, split_recipients
from drip.mail.links import Links, sample_links
from drip.mail.render import SAMPLE_READER, MessageTemplate, Reader, Renderer
from drip.mail.transports import Transport, envelope_sender
from drip.store.models import (
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    Engagement,
    Enrollment,
    EnrollmentStatus,
    Event,
    RecipientStatus,
    Subscriber,
    SubscriberTag,
)
from drip.store.queries import after_id

KEYS = frozenset({"subject", "preheader", "to", "readers", "tags", "segment", "engagement"})
ENGAGEMENT = ("engaged", "all")  # `engagement:`: engaged readers only (the default), or all
READERS = {
    "active": (EnrollmentStatus.ACTIVE,),
    "completed": (EnrollmentStatus.COMPLETED,),
    "both": (EnrollmentStatus.ACTIVE, EnrollmentStatus.COMPLETED),
}
READER_WORDS = {  # what `readers:` means, as the admin says it
    "both": "active and finished readers",
    "active": "readers still in the course",
    "completed": "readers who finished it",
}
VARIABLES = frozenset({"first_name", "unsubscribe_url", "preferences_url"})
BATCH = 200


class BroadcastError(ValueError):
    """A broadcast file that cannot be sent; `problems` say what and where."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class BroadcastFile:
    name: str
    subject: str
    preheader: str
    body: str
    to: tuple[str, ...]
    readers: str
    tags: tuple[str, ...]
    segment: str = ""  # a segment's name: only its readers, among those of `to`
    engagement: str = "engaged"  # or "all": quiet readers too (never the gone)
    test: dict[str, Any] = dataclasses.field(default_factory=dict)  # variants: (a test)

    def audience(self) -> dict[str, Any]:
        audience: dict[str, Any] = {
            "to": list(self.to),
            "readers": self.readers,
            "tags": list(self.tags),
            "engagement": self.engagement,
        }
        if self.segment:
            audience["segment"] = self.segment
        audience.update(self.test)  # drip.dispatch.broadcast_variants
        return audience


def read_broadcast(path: Path, library: Library) -> BroadcastFile:
    """The file, checked against the sequences there are; raises BroadcastError."""
    return parse_broadcast(path.read_text(encoding="utf-8"), path, library)


def parse_broadcast(text: str, path: Path, library: Library) -> BroadcastFile:
    """A broadcast's Markdown with front matter (a file, or one uploaded in the admin);
    `path` names it in the problems and its stem is the broadcast's name."""
    missing = "a broadcast starts with front matter between --- lines (subject, to, ...)"
    try:
        parsed = parse_front_matter(text, path, missing=missing)
    except FrontMatterError as error:
        raise BroadcastError([error.problem]) from None
    return broadcast_from(parsed.meta, parsed.body, library, path=path, body_line=parsed.body_line)


def broadcast_from(
    meta: dict[str, Any],
    body: str,
    library: Library,
    *,
    path: Path,
    body_line: int = 1,
    name: str | None = None,
) -> BroadcastFile:
    """The broadcast from its fields (front matter, the admin's form, the API's JSON), with
    every problem at once; one check for all three ways in."""
    test, problems = read_test(meta, path, KEYS)  # unknown keys; variants: (a test)
    subject = str(meta.get("subject") or "").strip()
    if not subject:
        problems.append(Problem(path, 2, "missing subject"))
    segment = str(meta.get("segment") or "").strip().lower()
    raw_to = meta.get("to")
    to = tuple([raw_to] if isinstance(raw_to, str) else raw_to or [])
    if not isinstance(raw_to, str | list | tuple | None):
        problems.append(Problem(path, 2, "to: a sequence or a list of sequences"))
        to = ()
    if not to and segment:
        to = tuple(sorted(library.sequences))  # the segment's readers, in whichever course
    if not to:
        problems.append(
            Problem(path, 2, "missing to: the sequence(s) whose readers get it (or a segment)")
        )
    for slug in to:
        if library.get(str(slug)) is None:
            problems.append(
                Problem(
                    path,
                    2,
                    f"to: no usable sequence {slug!r} (known: "
                    f"{', '.join(sorted(library.sequences))})",
                )
            )
    readers = str(meta.get("readers") or "both")
    if readers not in READERS:
        problems.append(Problem(path, 2, "readers is active, completed or both"))
    tags = _tags(meta.get("tags") or [], path, problems)
    engagement = str(meta.get("engagement") or "engaged")
    if engagement not in ENGAGEMENT:
        problems.append(Problem(path, 2, "engagement is engaged (the default) or all"))
    problems += check_variables(body, VARIABLES, path, body_line)
    if not body.strip():
        problems.append(Problem(path, body_line, "the broadcast has no body"))
    if problems:
        raise BroadcastError(problems)
    return BroadcastFile(
        name or path.stem,
        subject,
        str(meta.get("preheader") or "").strip(),
        body,
        tuple(str(slug) for slug in to),
        readers,
        tags,
        segment,
        engagement,
        test,
    )


def _tags(raw: Any, path: Path, problems: list[Problem]) -> tuple[str, ...]:
    """`tags:`, one or a list, each a tag drip accepts."""
    tags = tuple(
        str(tag).strip().lower()
        for tag in (raw if isinstance(raw, list) else [raw])
        if str(tag).strip()
    )
    for tag in tags:
        try:
            clean_tag(tag)
        except TagError as error:
            problems.append(Problem(path, 2, f"tags: {error}"))
    return tags


HORIZON = timedelta(days=5 * 365)  # a broadcast further ahead is a typo (year 9999)


def parse_when(text: str, zone: str, now: datetime) -> datetime:
    """When to send, from the admin's datetime-local field (a wall-clock time in `zone`) or
    the API's ISO-8601 instant; empty means now. A time in the past is refused, so a slip
    of the date does not send at once to everybody, and one beyond HORIZON too."""
    if not text.strip():
        return now
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(zone or "UTC"))
        at = value.astimezone(UTC)
    except (ValueError, ZoneInfoNotFoundError, OverflowError):
        raise BroadcastError(
            [
                Problem(
                    Path("at"),
                    1,
                    f"{text!r} in {zone!r} is not a time such as 2026-03-03T09:00 in "
                    "an IANA time zone such as America/New_York",
                )
            ]
        ) from None
    if at > now + HORIZON:
        raise BroadcastError(
            [
                Problem(
                    Path("at"),
                    1,
                    f"{at:%Y-%m-%d %H:%M} UTC is more than {HORIZON.days // 365} years ahead; "
                    "schedule it nearer the time",
                )
            ]
        )
    if at < now - timedelta(minutes=1):
        raise BroadcastError(
            [
                Problem(
                    Path("at"),
                    1,
                    f"{at:%Y-%m-%d %H:%M} UTC is in the past; leave it empty to send now",
                )
            ]
        )
    return max(at, now)


def audience_query(spec: BroadcastFile | dict[str, Any], within: Select[int] | None = None) -> Any:
    """(subscriber id, enrollment id, sequence, time zone) of each eligible reader, one row
    each (their first enrollment among the sequences), among the ids `within` selects (a
    segment) if given: evaluated by the database."""
    audience = spec.audience() if isinstance(spec, BroadcastFile) else spec
    statuses = READERS[audience.get("readers", "both")]
    first = (
        select(Enrollment.subscriber_id, func.min(Enrollment.id).label("enrollment_id"))
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
        .where(
            Enrollment.sequence.in_(audience["to"]),
            Enrollment.status.in_(statuses),
            Enrollment.confirmed_at.is_not(None),
            Subscriber.suppressed_at.is_(None),
            Subscriber.broadcasts_off_at.is_(None),
            Subscriber.engagement != Engagement.GONE,
        )
    )
    if audience.get("engagement") == "engaged":  # older broadcasts, without the key: all
        first = first.where(Subscriber.engagement == Engagement.ENGAGED)
    if audience.get("tags"):
        first = first.where(
            exists().where(
                SubscriberTag.subscriber_id == Subscriber.id,
                SubscriberTag.tag.in_(audience["tags"]),
            )
        )
    if within is not None:
        first = first.where(Subscriber.id.in_(within))
    chosen = first.group_by(Enrollment.subscriber_id).subquery()
    return (
        select(
            chosen.c.subscriber_id,
            chosen.c.enrollment_id,
            Enrollment.sequence,
            Subscriber.timezone,
            Subscriber.email,
        )
        .join(Enrollment, Enrollment.id == chosen.c.enrollment_id)
        .join(Subscriber, Subscriber.id == chosen.c.subscriber_id)
        .order_by(chosen.c.subscriber_id)
    )


def _within(session: Session, audience: dict[str, Any], now: datetime) -> Any:
    """The segment's SELECT of ids, or None; an unknown segment is a BroadcastError."""
    if not audience.get("segment"):
        return None
    try:
        return segments.ids_of(session, audience["segment"], now)
    except segments.SegmentError as error:
        raise BroadcastError([Problem(Path("segment"), 1, p) for p in error.problems]) from None


def audience_count(
    session: Session, spec: BroadcastFile | dict[str, Any], now: datetime
) -> tuple[int, list[str]]:
    """How many readers would get it, and the first few addresses (the dry run): counted
    and limited by the database."""
    audience = spec.audience() if isinstance(spec, BroadcastFile) else spec
    rows = audience_query(audience, _within(session, audience, now)).subquery()
    total = session.scalar(select(func.count()).select_from(rows)) or 0
    first = session.scalars(select(rows.c.email).order_by(rows.c.subscriber_id).limit(5))
    return int(total), list(first)


def create_draft(session: Session, spec: BroadcastFile, now: datetime, who: str) -> Broadcast:
    """Keep the broadcast, not yet scheduled (the admin's and the API's first step); the
    caller commits."""
    broadcast = Broadcast(
        name=spec.name[:200],
        subject=spec.subject,
        preheader=spec.preheader,
        body=spec.body,
        audience=spec.audience(),
        send_at=now,
        status=BroadcastStatus.DRAFT,
        created_at=now,
        created_by=who[:320],
    )
    session.add(broadcast)
    session.flush()
    return broadcast


def edit_draft(session: Session, broadcast_id: int, spec: BroadcastFile) -> Broadcast:
    """Put a checked spec in place of a draft's text and audience, keeping its name; only
    while it is a draft (a conditional update, so a schedule at the same moment wins
    cleanly). The caller commits."""
    edited = session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status == BroadcastStatus.DRAFT)
        .values(
            subject=spec.subject,
            preheader=spec.preheader,
            body=spec.body,
            audience=spec.audience(),
        )
        .execution_options(synchronize_session=False)
    )
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise BroadcastError([Problem(Path(str(broadcast_id)), 1, "no such broadcast")])
    if getattr(edited, "rowcount", 0) != 1:
        session.refresh(broadcast)
        raise BroadcastError(
            [
                Problem(
                    Path(str(broadcast_id)),
                    1,
                    f"the broadcast is {broadcast.status}, not a draft: only a draft can be edited",
                )
            ]
        )
    session.refresh(broadcast)
    return broadcast


def as_file(broadcast: Broadcast) -> str:
    """The broadcast as the file `drip broadcast send` takes: what the audit log keeps
    before and after an edit, so a diff shows the subject, the audience and the body."""
    meta: dict[str, Any] = {"subject": broadcast.subject}
    if broadcast.preheader:
        meta["preheader"] = broadcast.preheader
    meta.update(broadcast.audience)
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n{broadcast.body}"


def schedule_draft(
    session: Session, library: Library, broadcast: Broadcast, at: datetime, now: datetime
) -> int:
    """Schedule a draft for `at`: one recipient row per eligible reader of its audience as
    it is now (a segment is evaluated here, once); commits. Returns how many."""
    if broadcast.status != BroadcastStatus.DRAFT:
        where = Path(str(broadcast.id))
        raise BroadcastError(
            [Problem(where, 1, f"the broadcast is {broadcast.status}, not a draft")]
        )
    within = _within(session, broadcast.audience, now)
    claimed = session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast.id, Broadcast.status == BroadcastStatus.DRAFT)
        .values(status=BroadcastStatus.SCHEDULED, send_at=at)
    )
    if getattr(claimed, "rowcount", 0) != 1:  # scheduled twice at once: the first one wins
        session.rollback()
        raise BroadcastError([Problem(Path(str(broadcast.id)), 1, "the broadcast is scheduled")])
    written = write_recipients(
        session, library, broadcast.id, audience_query(broadcast.audience, within), at
    )
    split_recipients(session, broadcast)  # a test's share first (broadcast_variants)
    session.commit()
    session.refresh(broadcast)
    return written


def schedule(
    session: Session,
    library: Library,
    spec: BroadcastFile,
    at: datetime,
    now: datetime,
    who: str = "",
) -> Broadcast:
    """Write the broadcast and one recipient row per eligible reader; commits."""
    broadcast = create_draft(session, spec, now, who)
    schedule_draft(session, library, broadcast, at, now)
    return broadcast


def page_of_broadcasts(
    session: Session, after: int, limit: int
) -> tuple[list[Broadcast], int | None]:
    """Broadcasts oldest first after the id `after`; the next cursor if there are more."""
    return after_id(session, select(Broadcast), Broadcast.id, after, limit)


def cancel(session: Session, broadcast_id: int, now: datetime) -> int:
    """Stop a broadcast: readers whose turn has not come do not get it. Returns how many."""
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise BroadcastError([Problem(Path(str(broadcast_id)), 1, "no such broadcast")])
    if broadcast.status == BroadcastStatus.DONE:
        raise BroadcastError([Problem(Path(str(broadcast_id)), 1, "it has gone out to everyone")])
    broadcast.status, broadcast.cancelled_at = BroadcastStatus.CANCELLED, now
    skipped = session.execute(
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.broadcast_id == broadcast_id,
            BroadcastRecipient.status.in_([RecipientStatus.QUEUED, RecipientStatus.RETRYING]),
        )
        .values(status=RecipientStatus.SKIPPED, last_error="the broadcast was cancelled")
    )
    session.commit()
    return int(getattr(skipped, "rowcount", 0) or 0)


def progress(session: Session, broadcast_id: int) -> Counter[str]:
    """Recipients by status: queued, sending, sent, retrying, failed, skipped."""
    return Counter(
        dict(
            session.execute(
                select(BroadcastRecipient.status, func.count())
                .where(BroadcastRecipient.broadcast_id == broadcast_id)
                .group_by(BroadcastRecipient.status)
            ).all()
        )
    )


def next_due(session: Session, broadcast_id: int) -> datetime | None:
    """When the next waiting copies are due: each reader's due time is the first opening of
    their course's send window at or after the broadcast's time (set when it was scheduled),
    so a broadcast scheduled "now" outside every window sends nothing until the earliest."""
    due: datetime | None = session.scalar(
        select(func.min(BroadcastRecipient.due_at)).where(
            BroadcastRecipient.broadcast_id == broadcast_id,
            BroadcastRecipient.status == RecipientStatus.QUEUED,
        )
    )
    return due


def lesson_key(broadcast_id: int) -> str:
    """What a broadcast is called where lessons have their key: its tracked links' clicks."""
    return f"broadcast-{broadcast_id}"


def broadcast_of(key: str) -> int | None:
    """The broadcast a `lesson_key` names, or None for a lesson's key."""
    found = re.fullmatch(r"broadcast-(\d{1,9})", key)
    return int(found[1]) if found else None


def preview(
    renderer: Renderer, library: Library, broadcast: Broadcast, links: Links
) -> tuple[str, str, str]:
    """(subject, HTML, text) as the sample reader would get it, rendered by the renderer
    that sends; its links lead to a page that says it was a preview."""
    template = template_for(renderer, library, broadcast)
    sample = sample_links(links, "preview")
    return template.parts(SAMPLE_READER, sample, {"unsubscribe_url": sample.stop_url(0)})


def send_test(
    renderer: Renderer,
    library: Library,
    broadcast: Broadcast,
    links: Links,
    transport: Callable[[], Transport],
    to: str,
    now: datetime,
) -> str:
    """The broadcast to an operator's own address through the real transport, its subject
    marked [TEST] and its links touching no reader (as drip.studio.samples does for lessons).
    Returns its Message-ID; raises SendError as a real send would."""
    template = dataclasses.replace(
        template_for(renderer, library, broadcast), subject=f"[TEST] {broadcast.subject}"
    )
    address = normalize_email(to)
    reader = Reader(
        address, SAMPLE_READER.first_name, SAMPLE_READER.subscriber_id, SAMPLE_READER.enrollment_id
    )
    sample = sample_links(links, "test")
    mid = f"<drip.test.{uuid.uuid4().hex}@{renderer.domain}>"
    extra = {"unsubscribe_url": sample.stop_url(0)}
    message = template.build(reader, sample, mid, now, extra=extra)
    with transport() as relay:
        relay.send(
            envelope_sender(template.sender),
            address,
            message,
            name=f"{now:%Y%m%dT%H%M%S}-test-broadcast-{broadcast.id}",
        )
    return mid


def template_for(
    renderer: Renderer,
    library: Library,
    broadcast: Broadcast,
    courses: tuple[str, ...] = (),
) -> MessageTemplate:
    """The broadcast as the readers of `courses` get it (all its courses in a preview):
    the banner and the footer name those courses only, the first gives the sender and
    link tracking; the List-Id is the same short one for every broadcast. Raises
    BroadcastError when none of the courses can be read."""
    slugs = courses or tuple(broadcast.audience["to"])
    chosen = [library.sequences[s] for s in slugs if s in library.sequences]
    if not chosen:
        raise BroadcastError([Problem(Path(str(broadcast.id)), 1, unreadable(library, slugs))])
    first = chosen[0]
    stand_in: Sequence = dataclasses.replace(
        first,
        slug="broadcasts",
        title=" and ".join(s.title for s in chosen),
        track_links=first.track_links,  # its clicks are the broadcast's (lesson_key)
        track_opens=False,
        continues_from=(),
    )
    version = hashlib.sha256(f"{broadcast.subject}\0{broadcast.body}".encode()).hexdigest()[:12]
    template = renderer.message(
        stand_in,
        lesson_key(broadcast.id),
        version,
        broadcast.subject,
        broadcast.preheader,
        broadcast.body,
        track=True,  # links, where the first sequence tracks them; never an open pixel
    )
    return dataclasses.replace(template, list_id=f"<broadcasts.{renderer.domain}>")


def unreadable(library: Library, slugs: tuple[str, ...]) -> str:
    """Why the courses of a copy cannot be read, for the dashboard."""
    return "; ".join(
        library.broken_reason(slug) or f"the course folder {slug!r} is gone" for slug in slugs
    )


def stop_broadcasts(
    session: Session, recipient_id: int, now: datetime, *, everything: bool, how: str
) -> Subscriber | None:
    """The broadcast's unsubscribe link: no more broadcasts, or leave every course too."""
    row = session.get(BroadcastRecipient, recipient_id)
    subscriber = session.get(Subscriber, row.subscriber_id) if row else None
    if subscriber is None:
        return None
    subscriber.broadcasts_off_at = subscriber.broadcasts_off_at or now
    session.add(Event(subscriber_id=subscriber.id, kind="broadcasts_off", at=now, detail=how))
    if everything and row is not None:
        unsubscribe(session, row.enrollment_id, now, everything=True, how=how)
    return subscriber
