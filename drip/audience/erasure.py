"""Erasure: a reader and everything kept about them, gone in a few statements (the right to
erasure, the admin's bulk erase)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from drip.store.models import RateLimit, SignUpRequest, Subscriber


def erase_subscriber(session: Session, subscriber: Subscriber) -> None:
    """Delete the reader and, through the foreign keys' ON DELETE CASCADE, their enrollments,
    deliveries, consent records and timeline; sign-ups of the address still waiting to be
    taken in and the rate-limit counters naming it go too. The caller commits."""
    erase_subscribers(session, [subscriber.id])


def erase_subscribers(session: Session, subscriber_ids: Collection[int]) -> list[str]:
    """`erase_subscriber` for many readers in a few statements (the admin's bulk erase);
    the addresses erased. The caller commits."""
    ids = sorted(set(subscriber_ids))
    addresses = list(session.scalars(select(Subscriber.email).where(Subscriber.id.in_(ids))))
    if addresses:
        session.execute(delete(Subscriber).where(Subscriber.id.in_(ids)))
        session.execute(delete(SignUpRequest).where(SignUpRequest.email.in_(addresses)))
        for start in range(0, len(addresses), 100):  # SQLite refuses an OR 1,000 deep
            session.execute(
                delete(RateLimit).where(
                    or_(*(RateLimit.key.endswith(f":{a}") for a in addresses[start : start + 100]))
                )
            )
    session.expunge_all()
    return addresses
