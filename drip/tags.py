"""Tags on readers: each came from somewhere (a form, a link, the admin, the API), and its
coming and going is on the reader's timeline."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.models import Event, Subscriber, SubscriberTag

TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class TagError(ValueError):
    """A tag that is not one; the message says what a tag looks like."""


def clean_tag(raw: str) -> str:
    tag = raw.strip().lower()
    if not TAG.match(tag):
        raise TagError(f"{raw!r} is not a tag: use up to 40 lowercase letters, digits and "
                       "dashes, e.g. has-dates")
    return tag


def tags_of(session: Session, subscriber_id: int) -> list[str]:
    return list(session.scalars(select(SubscriberTag.tag).where(
        SubscriberTag.subscriber_id == subscriber_id).order_by(SubscriberTag.tag)))


def add_tags(session: Session, subscriber: Subscriber, tags: list[str], now: datetime,
             source: str) -> list[str]:
    """Add the tags the reader does not have yet; returns those added. The caller commits."""
    wanted = list(dict.fromkeys(clean_tag(tag) for tag in tags))
    have = set(tags_of(session, subscriber.id))
    added = [tag for tag in wanted if tag not in have]
    for tag in added:
        session.add(SubscriberTag(subscriber_id=subscriber.id, tag=tag, created_at=now,
                                  source=source[:200]))
        session.add(Event(subscriber_id=subscriber.id, kind="tagged", at=now,
                          detail=f"{tag} ({source})"[:500]))
    return added


def remove_tag(session: Session, subscriber: Subscriber, tag: str, now: datetime,
               source: str) -> bool:
    tag = clean_tag(tag)
    found = session.get(SubscriberTag, (subscriber.id, tag))
    if found is not None:
        session.delete(found)
        session.add(Event(subscriber_id=subscriber.id, kind="untagged", at=now,
                          detail=f"{tag} ({source})"[:500]))
    return found is not None
