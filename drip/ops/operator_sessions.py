"""Operator login sessions as rows: the cookie holds a random id, the table its SHA-256.

A signed cookie alone proves only that it was made with the secret key; whoever reads the key
could make one for any operator. So the admin looks the row up on every request: a session
exists only while its row does, and ending one (log out, revoke, a new role or password, the
account removed) is deleting rows. The id is never stored, so a copy of the table cannot be
turned into cookies either.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from drip.store.models import Operator, OperatorSession

# A session not used for this long ends; the browser may keep the cookie, the row is gone.
IDLE_LIMIT = timedelta(days=14)
# `last_seen_at` is written at most this often, not on every page.
SEEN_EVERY = timedelta(minutes=5)
_LONGEST_AGENT = 200


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(
    session: Session, operator: Operator, now: datetime, ip: str, user_agent: str
) -> str:
    """A new session for `operator`; returns the id for the cookie (shown nowhere else).
    The caller commits."""
    token = secrets.token_urlsafe(32)
    session.execute(  # sessions idle past the limit can never be used again: drop them
        delete(OperatorSession).where(OperatorSession.last_seen_at < now - IDLE_LIMIT)
    )
    session.add(
        OperatorSession(
            operator_id=operator.id,
            token_hash=_digest(token),
            created_at=now,
            last_seen_at=now,
            ip=ip[:64],
            user_agent=" ".join(user_agent.split())[:_LONGEST_AGENT],
        )
    )
    session.flush()
    return token


def find_session(session: Session, token: object, now: datetime) -> OperatorSession | None:
    """The live session whose cookie carries `token`, or None (no such row, or idle too
    long, or not a token at all)."""
    if not isinstance(token, str) or not token or len(token) > 100:
        return None
    digest = _digest(token)
    row = session.scalar(select(OperatorSession).where(OperatorSession.token_hash == digest))
    if row is None or now - row.last_seen_at > IDLE_LIMIT:
        return None
    return row


def mark_seen(session: Session, row: OperatorSession, now: datetime) -> bool:
    """Move `last_seen_at` on if it is older than SEEN_EVERY; True if the caller has a
    change to commit (the update is a statement of its own, not the row's pending state)."""
    if now - row.last_seen_at < SEEN_EVERY:
        return False
    session.execute(
        update(OperatorSession).where(OperatorSession.id == row.id).values(last_seen_at=now)
    )
    return True


def sessions_of(
    session: Session, operator_ids: Iterable[int], now: datetime
) -> dict[int, list[OperatorSession]]:
    """Each operator's live sessions, the most recently used first."""
    found: dict[int, list[OperatorSession]] = {}
    rows = session.scalars(
        select(OperatorSession)
        .where(
            OperatorSession.operator_id.in_(list(operator_ids)),
            OperatorSession.last_seen_at >= now - IDLE_LIMIT,
        )
        .order_by(OperatorSession.last_seen_at.desc(), OperatorSession.id.desc())
    )
    for row in rows:
        found.setdefault(row.operator_id, []).append(row)
    return found


def end_session(session: Session, session_id: int, operator_id: int) -> OperatorSession | None:
    """End one of `operator_id`'s sessions; the row as it was, or None if they have no such
    session (another operator's id is not theirs to end). The caller commits."""
    row = session.get(OperatorSession, session_id)
    if row is None or row.operator_id != operator_id:
        return None
    session.delete(row)
    session.flush()
    return row


def end_every_session(session: Session, operator: Operator | None = None) -> int:
    """End all of `operator`'s sessions (a new role or password), or everyone's (after the
    secret key is rotated or leaked); how many ended. The caller commits."""
    statement = delete(OperatorSession)
    if operator is not None:
        statement = statement.where(OperatorSession.operator_id == operator.id)
    ended = session.execute(statement)
    return int(getattr(ended, "rowcount", 0) or 0)


def describe(row: OperatorSession) -> str:
    """A session in words for the audit log: where from and what browser."""
    agent = row.user_agent or "unknown browser"
    return f"session {row.id} from {row.ip or 'an unknown address'} ({agent})"
