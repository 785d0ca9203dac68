"""Keys for the REST API: made once, shown once, kept as a SHA-256 (a key is 32 random
bytes, so a fast hash is enough), scoped to reading or to writing, revoked by name."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.store.models import ApiKey

SCOPES = ("read", "write")
PREFIX = "drip_"


class ApiKeyError(ValueError):
    """The key cannot be made or revoked; the message says why."""


@dataclass(frozen=True)
class Caller:
    """Who an API request comes from."""

    name: str
    scope: str

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, name: str, scope: str, now: datetime) -> str:
    """A new key; the caller shows it once and commits. Only its hash is stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ApiKeyError("a key needs a name of at most 100 characters")
    if scope not in SCOPES:
        raise ApiKeyError(f"the scope is read or write, not {scope!r}")
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise ApiKeyError(f"there is already a key named {name!r}: revoke it or pick another name")
    key = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, scope=scope, key_hash=_hash(key), created_at=now))
    return key


def revoke_key(session: Session, name: str, now: datetime) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if key is None:
        raise ApiKeyError(f"there is no key named {name!r}")
    key.revoked_at = key.revoked_at or now
    return key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.name)))


def authenticate(session: Session, key: str, now: datetime) -> Caller | None:
    """The caller a key belongs to, or None for an unknown or revoked key."""
    if not key.startswith(PREFIX) or len(key) > 200:
        return None
    found = session.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(key)))
    if found is None or found.revoked_at is not None:
        return None
    found.last_used_at = now
    return Caller(found.name, found.scope)
