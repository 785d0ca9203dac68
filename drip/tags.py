"""Tags on readers: each came from somewhere (a form, a link, the admin, the API), and its
coming and going is on the reader's timeline."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.content import Library
from drip.models import EnrollmentStatus, Event, Subscriber, SubscriberTag

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
                subscriber_id=subscriber.id, kind="tagged", at=now, detail=f"{tag} ({source})"[:500]
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
                kind="exited",
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
                kind="untagged",
                at=now,
                detail=f"{tag} ({source})"[:500],
            )
        )
    return found is not None
