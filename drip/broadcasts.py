"""Broadcasts: one email to the readers of one or more courses, written as a Markdown file
with front matter like a lesson's, plus its audience:

    ---
    subject: "A new post: the interview day, hour by hour"
    preheader: "What happens from the hotel lobby to the thank-you note."
    to: [interview-questions, networking-tips]
    readers: both          # active, completed, or both (the default)
    tags: [has-dates]      # optional: only readers with one of these tags
    segment: exam-soon     # optional: only the readers of this segment (drip.segments)
    ---

Scheduling (`schedule`) writes one recipient row per reader, due at the first opening of
their send window at or after the broadcast's time, in their time zone; the dispatch pass
sends them (`send_due`) with every guarantee a lesson has: each reader once (unique row),
claimed as a lease, written ahead as `sending`, their status read again right before the
hand-off, the outcome committed before the next, a message whose outcome a dying worker
did not record sent again under the same Message-ID. Never to a reader who left
everything, is suppressed, asked for no more broadcasts, or never confirmed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from sqlalchemy import Select, exists, func, insert, select, update
from sqlalchemy.orm import Session

from drip import segments, yaml_input
from drip.bounces import return_path
from drip.content import Library, Problem, Sequence, check_variables, split_front_matter
from drip.handoff import Unsendable, checked_message
from drip.links import Links, sample_links
from drip.mailer import OnFirstSend, SendError, Transport, envelope_sender
from drip.message_ids import new_message_id, sending_domain
from drip.models import (
    BounceEvent,
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    LinkClick,
    RecipientStatus,
    Subscriber,
    SubscriberTag,
)
from drip.outcome import Kind, Outcome, OutcomeStatus
from drip.pace import PacedRelay, backoff
from drip.queries import after_id
from drip.render import SAMPLE_READER, MessageTemplate, Reader, Renderer
from drip.schedule import into_window, reader_zone
from drip.subscriptions import normalize_email, suppress, unsubscribe
from drip.tags import TagError, clean_tag

KEYS = frozenset({"subject", "preheader", "to", "readers", "tags", "segment"})
READERS = {
    "active": (EnrollmentStatus.ACTIVE,),
    "completed": (EnrollmentStatus.COMPLETED,),
    "both": (EnrollmentStatus.ACTIVE, EnrollmentStatus.COMPLETED),
}
VARIABLES = frozenset({"first_name", "unsubscribe_url", "preferences_url"})
BATCH = 200
HOLD = timedelta(minutes=15)  # how long a copy waits when its course cannot be read


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

    def audience(self) -> dict[str, Any]:
        audience: dict[str, Any] = {
            "to": list(self.to),
            "readers": self.readers,
            "tags": list(self.tags),
        }
        if self.segment:
            audience["segment"] = self.segment
        return audience


def read_broadcast(path: Path, library: Library) -> BroadcastFile:
    """The file, checked against the sequences there are; raises BroadcastError."""
    return parse_broadcast(path.read_text(encoding="utf-8"), path, library)


def parse_broadcast(text: str, path: Path, library: Library) -> BroadcastFile:
    """A broadcast's Markdown with front matter (a file, or one uploaded in the admin);
    `path` names it in the problems and its stem is the broadcast's name."""
    parts = split_front_matter(text)
    if parts is None:
        raise BroadcastError(
            [
                Problem(
                    path,
                    1,
                    "a broadcast starts with front matter between --- lines (subject, to, ...)",
                )
            ]
        )
    front, body, body_line = parts
    try:
        meta = yaml_input.load(front) or {}
    except yaml_input.YamlRefused as error:
        raise BroadcastError([Problem(path, error.line + 1, error.reason)]) from None
    except yaml.YAMLError as error:
        raise BroadcastError(
            [
                Problem(
                    path, 2, f"the front matter is not valid YAML: {' '.join(str(error).split())}"
                )
            ]
        ) from None
    if not isinstance(meta, dict):
        raise BroadcastError([Problem(path, 2, "front matter must be keys and values")])
    return broadcast_from(meta, body, library, path=path, body_line=body_line)


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
    problems: list[Problem] = []
    for key in sorted(set(meta) - KEYS):
        problems.append(
            Problem(path, 2, f"unknown key {key!r} (allowed: {', '.join(sorted(KEYS))})")
        )
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
    raw_tags = meta.get("tags") or []
    if not isinstance(raw_tags, list):
        raw_tags = [raw_tags]
    tags = tuple(str(tag).strip().lower() for tag in raw_tags if str(tag).strip())
    for tag in tags:
        try:
            clean_tag(tag)
        except TagError as error:
            problems.append(Problem(path, 2, f"tags: {error}"))
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
    )


def name_for(subject: str) -> str:
    """A broadcast written in the admin or sent through the API is named for its subject."""
    words = re.findall(r"[a-z0-9]+", subject.lower())
    return "-".join(words)[:60].strip("-") or "broadcast"


def parse_when(text: str, zone: str, now: datetime) -> datetime:
    """When to send, from the admin's datetime-local field (a wall-clock time in `zone`) or
    the API's ISO-8601 instant; empty means now. A time in the past is refused, so a slip
    of the date does not send at once to everybody."""
    if not text.strip():
        return now
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(zone or "UTC"))
    except (ValueError, ZoneInfoNotFoundError):
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
    at = value.astimezone(UTC)
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
        )
    )
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
    written = 0
    batch: list[dict[str, Any]] = []
    for row in session.execute(audience_query(broadcast.audience, within)):
        sequence = library.sequences[row.sequence]
        due = into_window(at, sequence.window, reader_zone(row.timezone, sequence.timezone))
        batch.append(
            {
                "broadcast_id": broadcast.id,
                "subscriber_id": row.subscriber_id,
                "enrollment_id": row.enrollment_id,
                "status": RecipientStatus.QUEUED,
                "due_at": due,
                "attempts": 0,
            }
        )
        if len(batch) >= 1000:
            session.execute(insert(BroadcastRecipient), batch)
            written += len(batch)
            batch = []
    if batch:
        session.execute(insert(BroadcastRecipient), batch)
        written += len(batch)
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


def broadcast_message_id(
    session: Session, row: BroadcastRecipient, renderer: Renderer, sender: str
) -> str:
    """One reader's copy of a broadcast: written on the row before the hand-off, so a retry
    of it (a worker died after the hand-off) carries the same id."""
    if row.message_id is None:
        domain = sending_domain(sender, renderer.domain)
        row.message_id = new_message_id(
            renderer.settings.secret_key, row.enrollment_id, lesson_key(row.broadcast_id), domain
        )
        session.commit()
    return row.message_id


def cancel(session: Session, broadcast_id: int, now: datetime) -> int:
    """Stop a broadcast: readers whose turn has not come do not get it. Returns how many."""
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise BroadcastError([Problem(Path(str(broadcast_id)), 1, "no such broadcast")])
    if broadcast.status == BroadcastStatus.DONE:
        raise BroadcastError([Problem(Path(str(broadcast_id)), 1, "it has gone out to everyone")])
    broadcast.status = BroadcastStatus.CANCELLED
    broadcast.cancelled_at = now
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


def lesson_key(broadcast_id: int) -> str:
    """What a broadcast is called where lessons have their key: its tracked links' clicks."""
    return f"broadcast-{broadcast_id}"


def broadcast_of(key: str) -> int | None:
    """The broadcast a `lesson_key` names, or None for a lesson's key."""
    found = re.fullmatch(r"broadcast-(\d{1,9})", key)
    return int(found[1]) if found else None


def report(session: Session, broadcast: Broadcast, library: Library) -> dict[str, Any]:
    """A broadcast's progress for the admin's live bars and the API: recipients by where
    they are (`queued` counts those waiting, being sent and to be retried), `bounced` the
    sent ones whose address a provider or the bounce mailbox reported bouncing since, and
    `clicked` the readers who clicked one of its links (only when its first sequence tracks
    links; `tracked` says so)."""
    counts = progress(session, broadcast.id)
    bounced = session.scalar(
        select(func.count(func.distinct(BroadcastRecipient.id))).where(
            BroadcastRecipient.broadcast_id == broadcast.id,
            BroadcastRecipient.status == RecipientStatus.SENT,
            exists().where(
                BounceEvent.subscriber_id == BroadcastRecipient.subscriber_id,
                BounceEvent.kind.in_(["hard", "soft"]),
                BounceEvent.received_at >= BroadcastRecipient.sent_at,
            ),
        )
    )
    first = library.get(broadcast.audience["to"][0]) if broadcast.audience.get("to") else None
    tracked = bool(first and first.track_links)
    clicked = (
        session.scalar(
            select(func.count(func.distinct(LinkClick.enrollment_id))).where(
                LinkClick.sequence.in_(broadcast.audience["to"]),  # ix_link_clicks_lesson
                LinkClick.lesson == lesson_key(broadcast.id),
                LinkClick.counted.is_(True),
                LinkClick.link_index >= 0,
            )
        )
        if tracked
        else 0
    )
    return {
        "id": broadcast.id,
        "name": broadcast.name,
        "waiting_because": waiting_because(session, broadcast.id),
        "subject": broadcast.subject,
        "status": str(broadcast.status),
        "send_at": broadcast.send_at.isoformat(),
        "audience": broadcast.audience,
        "total": sum(counts.values()),
        "queued": counts[RecipientStatus.QUEUED]
        + counts[RecipientStatus.SENDING]
        + counts[RecipientStatus.RETRYING],
        "sent": counts[RecipientStatus.SENT],
        "failed": counts[RecipientStatus.FAILED],
        "skipped": counts[RecipientStatus.SKIPPED],
        "bounced": int(bounced or 0),
        "clicked": int(clicked or 0),
        "tracked": tracked,
    }


def waiting_because(session: Session, broadcast_id: int) -> list[tuple[str, int]]:
    """Why copies still to be sent wait (a course that cannot be read, the relay's last
    answer), with how many wait for each reason: the broadcast page shows them."""
    rows = session.execute(
        select(BroadcastRecipient.last_error, func.count())
        .where(
            BroadcastRecipient.broadcast_id == broadcast_id,
            BroadcastRecipient.status.in_([RecipientStatus.QUEUED, RecipientStatus.RETRYING]),
            BroadcastRecipient.last_error.is_not(None),
        )
        .group_by(BroadcastRecipient.last_error)
        .order_by(func.count().desc())
        .limit(10)
    )
    return [(str(reason), int(number)) for reason, number in rows]


def preview(
    renderer: Renderer, library: Library, broadcast: Broadcast, links: Links
) -> tuple[str, str, str]:
    """(subject, HTML, text) as the sample reader would get it, rendered by the renderer
    that sends; its links lead to a page that says it was a preview."""
    template = _template(renderer, library, broadcast)
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
    marked [TEST] and its links touching no reader (as drip.samples does for lessons).
    Returns its Message-ID; raises SendError as a real send would."""
    template = dataclasses.replace(
        _template(renderer, library, broadcast), subject=f"[TEST] {broadcast.subject}"
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


def _template(
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
        raise BroadcastError([Problem(Path(str(broadcast.id)), 1, _unreadable(library, slugs))])
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


def _unreadable(library: Library, slugs: tuple[str, ...]) -> str:
    """Why the courses of a copy cannot be read, for the dashboard."""
    return "; ".join(
        library.broken_reason(slug) or f"the course folder {slug!r} is gone" for slug in slugs
    )


@dataclass
class Sent:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if outcome.status is OutcomeStatus.SENT:
            self.sent += 1
        elif outcome.status is OutcomeStatus.SKIPPED:
            self.skipped += 1
        else:
            self.failed += 1


def _due(now: datetime) -> Select[int]:
    """The recipient rows due at `now`, longest waiting first: the pass's and the dry run's."""
    return (
        select(BroadcastRecipient.id)
        .where(
            BroadcastRecipient.status.in_(
                [RecipientStatus.QUEUED, RecipientStatus.RETRYING, RecipientStatus.SENDING]
            ),
            BroadcastRecipient.due_at <= now,
        )
        .order_by(BroadcastRecipient.due_at)
        .limit(BATCH)
    )


def send_due(
    session: Session,
    library: Library,
    renderer: Renderer,
    links: Links,
    transport: PacedRelay,
    now: datetime,
    worker: str,
    lease: timedelta,
) -> Sent:
    """Send the broadcast messages due at `now`, batch by batch, each after its slot of
    the shared pace; a relay that is down or asks drip to slow down ends the run."""
    result = Sent()
    postgres = session.get_bind().dialect.name == "postgresql"
    templates: dict[tuple[int, tuple[str, ...]], MessageTemplate] = {}
    while True:
        due = _due(now)
        ids = list(session.scalars(due.with_for_update(skip_locked=True) if postgres else due))
        if not ids:
            return result
        session.execute(
            update(BroadcastRecipient)
            .where(BroadcastRecipient.id.in_(ids))
            .values(status=RecipientStatus.SENDING, due_at=now + lease, lease_owner=worker)
        )
        session.commit()
        relay_down = False
        with OnFirstSend(transport) as relay:
            for rid in ids:
                row = session.get(BroadcastRecipient, rid)
                if row is None or row.lease_owner != worker:
                    continue
                if relay_down:
                    row.status, row.lease_owner = RecipientStatus.RETRYING, None
                    row.due_at = now + timedelta(minutes=1)
                    session.commit()
                    continue
                copy = _Copy(session, library, renderer, links, now, templates)
                outcome = copy.send(relay, transport, row)
                if outcome is not None:
                    result.count(outcome)
                    relay_down = outcome.relay_down
        _finish(session)
        if relay_down or len(ids) < BATCH:
            return result


def would_send(session: Session, library: Library, now: datetime) -> list[Outcome]:
    """The broadcast copies a pass at `now` would hand over (the dry run): the same rows,
    the same window, hold and status checks, nothing leased or written."""
    found = []
    for row in session.scalars(
        select(BroadcastRecipient).where(BroadcastRecipient.id.in_(_due(now)))
    ):
        place = _place(session, library, row, now)
        if not isinstance(place, _Placed):
            continue
        broadcast = session.get(Broadcast, row.broadcast_id)
        subscriber = session.get(Subscriber, row.subscriber_id)
        enrollment = session.get(Enrollment, row.enrollment_id)
        if _why_not(broadcast, subscriber, enrollment, library) or subscriber is None:
            continue
        found.append(_outcome(row, subscriber.email, place.course, OutcomeStatus.WOULD_SEND))
    return found


@dataclass(frozen=True)
class _Placed:
    """A copy whose course can be read, due now inside the reader's send window."""

    course: Sequence
    zone: ZoneInfo


def _place(
    session: Session, library: Library, row: BroadcastRecipient, now: datetime
) -> _Placed | tuple[str, datetime] | None:
    """Where a copy stands before its slot: placed; or held (why, and until when) when its
    course cannot be read, or outside the reader's window (its next opening); None when
    the reader is gone (the status check says so)."""
    found = session.execute(
        select(Enrollment.sequence, Subscriber.timezone)
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
        .where(Enrollment.id == row.enrollment_id)
    ).first()
    if found is None:
        return None
    course = library.get(found.sequence)
    if course is None:
        return _unreadable(library, (found.sequence,)), now + HOLD
    zone = reader_zone(found.timezone, course.timezone)
    opens = into_window(now, course.window, zone)
    if opens != now:
        return "", opens
    return _Placed(course, zone)


def _outcome(
    row: BroadcastRecipient,
    email: str,
    course: Sequence | str,
    status: OutcomeStatus,
    detail: str = "",
    relay_down: bool = False,
) -> Outcome:
    return Outcome(
        row.enrollment_id,
        email,
        course if isinstance(course, str) else course.slug,
        lesson_key(row.broadcast_id),
        status,
        detail,
        relay_down,
        kind=Kind.BROADCAST,
    )


class _Copy:
    """One reader's copy of a broadcast: placed in their window, paced, checked, handed
    over, and its outcome recorded by the one retry rule."""

    def __init__(
        self,
        session: Session,
        library: Library,
        renderer: Renderer,
        links: Links,
        now: datetime,
        templates: dict[tuple[int, tuple[str, ...]], MessageTemplate],
    ) -> None:
        self.session, self.library, self.renderer = session, library, renderer
        self.links, self.now, self.templates = links, now, templates

    def send(self, relay: Transport, pace: PacedRelay, row: BroadcastRecipient) -> Outcome | None:
        """Hand the copy over and record the outcome; None when it was only put back
        (held, or outside the window). A message that cannot be built or addressed fails
        that recipient alone, with the reason on its timeline."""
        session, now = self.session, self.now
        place = _place(session, self.library, row, now)
        if isinstance(place, tuple):
            row.status, row.lease_owner, row.due_at = RecipientStatus.QUEUED, None, place[1]
            row.last_error = place[0] or row.last_error
            session.commit()
            return None
        pace.slot()  # the wait before the status read, not between it and the hand-off
        broadcast = session.get(Broadcast, row.broadcast_id)
        subscriber = session.get(Subscriber, row.subscriber_id)
        enrollment = session.get(Enrollment, row.enrollment_id)
        why = _why_not(broadcast, subscriber, enrollment, self.library)
        if place is None or why or broadcast is None or subscriber is None:
            row.status, row.last_error, row.lease_owner = RecipientStatus.SKIPPED, why, None
            session.commit()
            email = subscriber.email if subscriber else ""
            return _outcome(row, email, "", OutcomeStatus.SKIPPED, why)
        template = self._template(broadcast, subscriber, place.course)
        reader = Reader(subscriber.email, subscriber.first_name, subscriber.id, row.enrollment_id)

        def build() -> bytes:
            extra = {"unsubscribe_url": self.links.stop_url(row.id)}
            mid = broadcast_message_id(session, row, self.renderer, template.sender)
            return template.build(reader, self.links, mid, now, extra=extra)

        try:
            message = checked_message(subscriber.email, build)
            relay.send(
                return_path(self.renderer.settings, template.sender, None, row.enrollment_id),
                subscriber.email,
                message,
                name=f"{now:%Y%m%dT%H%M%S}-broadcast-{broadcast.id}-{row.id}",
            )
        except Unsendable as error:
            _not_sent(session, row, str(error), now)
            return _outcome(row, subscriber.email, place.course, OutcomeStatus.FAILED, str(error))
        except SendError as error:
            status = self._failed(row, subscriber, error, place)
            down = error.connection or error.throttled
            return _outcome(row, subscriber.email, place.course, status, str(error), down)
        row.status, row.sent_at, row.lease_owner = RecipientStatus.SENT, now, None
        row.attempts += 1
        row.last_error = None
        session.commit()
        return _outcome(row, subscriber.email, place.course, OutcomeStatus.SENT)

    def _template(
        self, broadcast: Broadcast, subscriber: Subscriber, course: Sequence
    ) -> MessageTemplate:
        """The copy for this reader's own courses among the broadcast's, theirs first."""
        statuses = READERS[broadcast.audience.get("readers", "both")]
        joined = set(
            self.session.scalars(
                select(Enrollment.sequence).where(
                    Enrollment.subscriber_id == subscriber.id,
                    Enrollment.sequence.in_(broadcast.audience["to"]),
                    Enrollment.status.in_(statuses),
                )
            )
        )
        others = [s for s in broadcast.audience["to"] if s in joined and s != course.slug]
        courses = (course.slug, *others)
        key = (broadcast.id, courses)
        if key not in self.templates:
            self.templates[key] = _template(self.renderer, self.library, broadcast, courses)
        return self.templates[key]

    def _failed(
        self, row: BroadcastRecipient, subscriber: Subscriber, error: SendError, place: _Placed
    ) -> OutcomeStatus:
        """The one retry rule: a refusal for good suppresses the address; a transient one is
        tried again after `backoff`, in the reader's window, up to DRIP_MAX_ATTEMPTS; the
        relay's "slow down" charges no attempt."""
        row.last_error = str(error)
        row.lease_owner = None
        if error.throttled:
            row.status = RecipientStatus.RETRYING
            row.due_at = into_window(self.now + backoff(1), place.course.window, place.zone)
        elif not error.transient:
            row.attempts += 1
            row.status = RecipientStatus.FAILED
            suppress(self.session, subscriber, self.now, str(error))
        elif row.attempts + 1 >= self.renderer.settings.max_attempts:
            row.attempts += 1
            row.status = RecipientStatus.FAILED
        else:
            row.attempts += 1
            row.status = RecipientStatus.RETRYING
            wait = backoff(row.attempts)
            row.due_at = into_window(self.now + wait, place.course.window, place.zone)
        self.session.commit()
        status = {
            RecipientStatus.FAILED: OutcomeStatus.FAILED,
            RecipientStatus.RETRYING: OutcomeStatus.RETRYING,
        }
        return status[RecipientStatus(row.status)]


def _not_sent(session: Session, row: BroadcastRecipient, reason: str, now: datetime) -> None:
    """A recipient whose message cannot be built or addressed: failed, with the reason on
    the row and on the reader's timeline."""
    row.status, row.last_error, row.lease_owner = RecipientStatus.FAILED, reason, None
    row.attempts += 1
    session.add(
        Event(
            subscriber_id=row.subscriber_id,
            enrollment_id=row.enrollment_id,
            kind=EventKind.NOT_SENT,
            at=now,
            detail=f"broadcast {row.broadcast_id}: {reason}",
        )
    )
    session.commit()


def _why_not(
    broadcast: Broadcast | None,
    subscriber: Subscriber | None,
    enrollment: Enrollment | None,
    library: Library,
) -> str:
    """Read right before the hand-off: why this reader must not get it now, or ""."""
    if broadcast is None or broadcast.status == BroadcastStatus.CANCELLED:
        return "the broadcast was cancelled"
    if subscriber is None or enrollment is None:
        return "the reader was erased"
    if subscriber.suppressed_at is not None:
        return "the address is suppressed"
    if subscriber.broadcasts_off_at is not None:
        return "the reader asked for no more broadcasts"
    if enrollment.status not in READERS["both"] and not any(
        e.status in READERS["both"]
        for e in subscriber.enrollments
        if e.sequence in broadcast.audience["to"]
    ):
        return "the reader left"
    return ""


def _finish(session: Session) -> None:
    """A scheduled broadcast with no recipient left to send is done."""
    open_rows = select(BroadcastRecipient.id).where(
        BroadcastRecipient.broadcast_id == Broadcast.id,
        BroadcastRecipient.status.in_(
            [RecipientStatus.QUEUED, RecipientStatus.SENDING, RecipientStatus.RETRYING]
        ),
    )
    session.execute(
        update(Broadcast)
        .where(Broadcast.status == BroadcastStatus.SCHEDULED, ~exists(open_rows))
        .values(status=BroadcastStatus.DONE)
    )
    session.commit()


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
