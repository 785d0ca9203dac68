"""Tags on readers: each came from somewhere (a form, a link, the admin, the API), and its
coming and going is on the reader's timeline."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import String, Table, delete, exists, insert, literal, select, update
from sqlalchemy.orm import Session

from drip.content.sequences import Library
from drip.store.models import (
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    Subscriber,
    SubscriberTag,
    UTCDateTime,
)

TAGS = cast(Table, SubscriberTag.__table__)  # Core: a bulk insert without the ORM's bookkeeping
EVENTS = cast(Table, Event.__table__)
TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
GOING = (EnrollmentStatus.PENDING, EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)


class TagError(ValueError):
    """A tag that is not one; the message says what a tag looks like."""


def clean_tag(raw: str) -> str:
    tag = raw.strip().lower()
    if not TAG.match(tag):
        raise TagError(
            f"{raw!r} is not a tag: use up to 40 lowercase letters, digits and "
            "dashes, e.g. has-dates"
        )
    return tag


def tags_of(session: Session, subscriber_id: int) -> list[str]:
    return list(
        session.scalars(
            select(SubscriberTag.tag)
            .where(SubscriberTag.subscriber_id == subscriber_id)
            .order_by(SubscriberTag.tag)
        )
    )


@dataclass(frozen=True)
class ReaderTags:
    """A reader's tags, each with when and from where it came, and every coming and going
    (events with no enrollment, so the per-course timelines do not show them)."""

    current: list[SubscriberTag]
    history: list[Event]


def reader_tags(session: Session, subscriber_id: int) -> ReaderTags:
    return ReaderTags(
        list(
            session.scalars(
                select(SubscriberTag)
                .where(SubscriberTag.subscriber_id == subscriber_id)
                .order_by(SubscriberTag.tag)
            )
        ),
        list(
            session.scalars(
                select(Event)
                .where(
                    Event.subscriber_id == subscriber_id,
                    Event.kind.in_([EventKind.TAGGED, EventKind.UNTAGGED]),
                )
                .order_by(Event.at, Event.id)
            )
        ),
    )


def add_tags(
    session: Session,
    subscriber: Subscriber,
    tags: list[str],
    now: datetime,
    source: str,
    library: Library | None = None,
) -> list[str]:
    """Add the tags the reader does not have yet; returns those added. With the `library`,
    a course whose `exit_when` is one of them ends for the reader. The caller commits."""
    wanted = list(dict.fromkeys(clean_tag(tag) for tag in tags))
    have = set(tags_of(session, subscriber.id))
    added = [tag for tag in wanted if tag not in have]
    for tag in added:
        session.add(
            SubscriberTag(subscriber_id=subscriber.id, tag=tag, created_at=now, source=source[:200])
        )
        session.add(
            Event(
                subscriber_id=subscriber.id,
                kind=EventKind.TAGGED,
                at=now,
                detail=f"{tag} ({source})"[:500],
            )
        )
    if library is not None and added:
        _exit_courses(session, subscriber, set(added), library, now)
    return added


def _exit_courses(
    session: Session, subscriber: Subscriber, added: set[str], library: Library, now: datetime
) -> None:
    """The reader reached a course's goal (`exit_when`): the course ends here for them."""
    for enrollment in subscriber.enrollments:
        sequence = library.get(enrollment.sequence)
        if sequence is None or sequence.exit_when not in added or enrollment.status not in GOING:
            continue
        enrollment.status = EnrollmentStatus.COMPLETED
        enrollment.completed_at = now
        enrollment.due_at = None
        enrollment.next_lesson = None
        session.add(
            Event(
                subscriber_id=subscriber.id,
                enrollment_id=enrollment.id,
                kind=EventKind.EXITED,
                at=now,
                detail=f"reached the goal: tagged {sequence.exit_when}",
            )
        )


def remove_tag(
    session: Session, subscriber: Subscriber, tag: str, now: datetime, source: str
) -> bool:
    tag = clean_tag(tag)
    found = session.get(SubscriberTag, (subscriber.id, tag))
    if found is not None:
        session.delete(found)
        session.add(
            Event(
                subscriber_id=subscriber.id,
                kind=EventKind.UNTAGGED,
                at=now,
                detail=f"{tag} ({source})"[:500],
            )
        )
    return found is not None


def subscriber_events(
    session: Session, subscriber_ids: Collection[int], kind: EventKind, now: datetime, detail: str
) -> None:
    """One timeline entry for each reader, in one INSERT ... SELECT."""
    if subscriber_ids:
        session.execute(
            insert(EVENTS).from_select(
                ["subscriber_id", "kind", "at", "detail"],
                select(
                    Subscriber.id,
                    literal(str(kind), String()),
                    literal(now, UTCDateTime()),
                    literal(detail[:500], String()),
                ).where(Subscriber.id.in_(sorted(subscriber_ids))),
            )
        )


def tag_readers(
    session: Session,
    subscriber_ids: Collection[int],
    tag: str,
    now: datetime,
    source: str,
    library: Library | None = None,
) -> int:
    """`add_tags` for many readers at once (the admin's bulk action), in set-based
    statements: the tag, its timeline entry and, with the `library`, the end of each course
    whose `exit_when` it is. Returns how many readers had not had the tag."""
    tag = clean_tag(tag)
    ids = sorted(set(subscriber_ids))
    if not ids:
        return 0
    added = list(
        session.scalars(
            insert(TAGS)
            .from_select(
                ["subscriber_id", "tag", "created_at", "source"],
                select(
                    Subscriber.id,
                    literal(tag, String()),
                    literal(now, UTCDateTime()),
                    literal(source[:200], String()),
                ).where(
                    Subscriber.id.in_(ids),
                    ~exists().where(
                        SubscriberTag.subscriber_id == Subscriber.id, SubscriberTag.tag == tag
                    ),
                ),
            )
            .returning(TAGS.c.subscriber_id)
        )
    )
    if not added:
        return 0
    subscriber_events(session, added, EventKind.TAGGED, now, f"{tag} ({source})")
    if library is not None:
        _reach_goals(session, library, added, tag, now)
    return len(added)


def _reach_goals(
    session: Session, library: Library, subscriber_ids: list[int], tag: str, now: datetime
) -> None:
    """End, for these readers, each course whose goal (`exit_when`) is `tag`."""
    goals = [s.slug for s in library.sequences.values() if s.exit_when == tag]
    if not goals:
        return
    ended = session.execute(
        update(Enrollment)
        .where(
            Enrollment.subscriber_id.in_(subscriber_ids),
            Enrollment.sequence.in_(goals),
            Enrollment.status.in_(GOING),
        )
        .values(status=EnrollmentStatus.COMPLETED, completed_at=now, due_at=None, next_lesson=None)
        .returning(Enrollment.id, Enrollment.subscriber_id)
        .execution_options(synchronize_session=False)
    ).all()
    if ended:
        session.execute(
            insert(EVENTS),
            [
                {
                    "subscriber_id": subscriber_id,
                    "enrollment_id": enrollment_id,
                    "kind": EventKind.EXITED,
                    "at": now,
                    "detail": f"reached the goal: tagged {tag}",
                }
                for enrollment_id, subscriber_id in ended
            ],
        )


def untag_readers(
    session: Session, subscriber_ids: Collection[int], tag: str, now: datetime, source: str
) -> int:
    """`remove_tag` for many readers at once; how many had the tag."""
    tag = clean_tag(tag)
    ids = sorted(set(subscriber_ids))
    if not ids:
        return 0
    removed = list(
        session.scalars(
            delete(SubscriberTag)
            .where(SubscriberTag.subscriber_id.in_(ids), SubscriberTag.tag == tag)
            .returning(SubscriberTag.subscriber_id)
            .execution_options(synchronize_session=False)
        )
    )
    subscriber_events(session, removed, EventKind.UNTAGGED, now, f"{tag} ({source})")
    return len(removed)
