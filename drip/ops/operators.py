"""Operator accounts: creation, roles, password checks and login throttling.

Plain functions of a session and `now`, like the rest of the domain code. Login attempts are
counted in the database (`RateLimit`) per IP and per account, before the password is checked
and in one statement, so every web worker sees the same counts and a guesser can neither
spread attempts over workers nor fire them all at once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from drip.audience.subscriptions import SubscriptionError, normalize_email
from drip.ops.operator_sessions import end_every_session
from drip.store.models import Operator, RateLimit, Role
from drip.store.ratelimit import hits, window_start

LOGIN_WINDOW = timedelta(minutes=15)
# Failed logins per window before the right password is refused too: per account *from one
# IP* (so a stranger's guesses never lock the operator out of their own address) and per
# IP across accounts.
FAILED_PER_ACCOUNT = 5
FAILED_PER_IP = 20
MIN_PASSWORD = 10
FIRST_OPERATOR = "admin@localhost"

_DEFAULT_HASHER = PasswordHasher()
# `build_services` puts its hasher in every session's `Session.info` under this key, so these
# functions, which take only a session, hash with it (the tests' is cheap).
PASSWORD_HASHER = "password_hasher"


class OperatorError(ValueError):
    """The operator cannot be created; the message says why."""


@dataclass(frozen=True)
class LoginResult:
    operator: Operator | None
    throttled: bool = False


def _hasher(session: Session) -> PasswordHasher:
    """The hasher of the `Services` that opened the session (see `build_services`)."""
    hasher = session.info.get(PASSWORD_HASHER)
    return hasher if isinstance(hasher, PasswordHasher) else _DEFAULT_HASHER


@cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Verified against when the account does not exist, so both cases cost one argon2
    check; made with the same hasher, so it costs what a real operator's check costs."""
    return hasher.hash(secrets.token_urlsafe(16))


def hash_password(session: Session, password: str) -> str:
    return _hasher(session).hash(password)


# What an operator's address may be once checked: plain ASCII, no spaces, quotes, angle
# brackets or display name, since it is also the git author of their studio commits.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(_ATOM + r"(\." + _ATOM + r")*@[a-z0-9-]+(\.[a-z0-9-]+)*")


def plain_address(text: str) -> bool:
    """Whether `text` is an address alone, as `create_operator` stores them: nothing a
    header or a git identity could read as a name or a second field."""
    return _PLAIN_ADDRESS.fullmatch(text) is not None


def _address(email: str) -> str:
    """An operator's address, validated as an email address. The domain need not be public
    (admin@localhost is the embedded default), but the part before it is checked like any."""
    text = email.strip().lower()
    local, at, domain = text.rpartition("@")
    why = "give the address alone, such as ada@example.org, with no name, spaces or quotes"
    try:
        if at and domain == "localhost":
            checked = normalize_email(f"{local}@example.org").rpartition("@")[0] + "@localhost"
        else:
            checked = normalize_email(text)
    except SubscriptionError as error:
        checked, why = "", str(error).partition("valid email address: ")[2] or why
    if not plain_address(checked):
        raise OperatorError(f"{email.strip()[:100]!r} is not a valid email address: {why}")
    return checked


def create_operator(
    session: Session, email: str, password: str, now: datetime, role: Role = Role.owner
) -> Operator:
    """A new operator; an owner unless told otherwise (the first one must manage the rest)."""
    address = _address(email)
    if len(password) < MIN_PASSWORD:
        raise OperatorError(f"the password must have at least {MIN_PASSWORD} characters")
    if session.scalar(select(Operator).where(Operator.email == address)) is not None:
        raise OperatorError(f"an operator {address} already exists")
    operator = Operator(
        email=address, password_hash=hash_password(session, password), created_at=now, role=role
    )
    session.add(operator)
    session.flush()
    return operator


def new_password() -> str:
    """A password for an operator an owner adds in the admin, shown once: drip picks it, so
    it is long and random, never one the owner reuses elsewhere."""
    return secrets.token_urlsafe(15)


def operators(session: Session) -> list[Operator]:
    return list(session.scalars(select(Operator).order_by(Operator.email)))


def _keep_an_owner(session: Session, operator: Operator, change: str) -> None:
    """Refuse to take the last owner away: nobody could manage operators any more. The
    owners' rows are locked, so two owners demoting each other at once cannot both pass."""
    owners = session.scalars(
        select(Operator.id).where(Operator.role == Role.owner).with_for_update()
    ).all()
    if operator.role == Role.owner and list(owners) == [operator.id]:
        raise OperatorError(
            f"{operator.email} is the last owner and cannot be {change}: "
            "make another operator an owner first"
        )


def set_role(session: Session, operator: Operator, role: Role) -> bool:
    """Give `operator` another role and end their sessions, so they log in again under it;
    False if they had it already. The caller commits."""
    if operator.role == role:
        return False
    if role != Role.owner:
        _keep_an_owner(session, operator, "demoted")
    operator.role = role
    end_every_session(session, operator)
    return True


def remove_operator(session: Session, operator: Operator) -> None:
    """Delete the account, which ends its sessions (the audit log keeps its address)."""
    _keep_an_owner(session, operator, "removed")
    end_every_session(session, operator)
    session.delete(operator)
    session.flush()


def set_password(session: Session, email: str, password: str) -> Operator:
    """A new password; every session logged in with the old one ends."""
    if len(password) < MIN_PASSWORD:
        raise OperatorError(f"the password must have at least {MIN_PASSWORD} characters")
    address = email.strip().lower()
    operator = session.scalar(select(Operator).where(Operator.email == address))
    if operator is None:
        raise OperatorError(f"there is no operator {address}")
    operator.password_hash = hash_password(session, password)
    end_every_session(session, operator)
    return operator


def _login_keys(address: str, ip: str) -> dict[str, int]:
    return {
        f"login:ip:{ip}": FAILED_PER_IP,
        f"login:account:{address}:ip:{ip}": FAILED_PER_ACCOUNT,
    }


def _give_back(session: Session, keys: Iterable[str], now: datetime) -> None:
    """A right password: its attempt is not a failure, so it leaves the counts as it found
    them (a count back at nothing leaves no row holding the address and IP)."""
    stored = [key[:255] for key in keys]
    current = (RateLimit.key.in_(stored), RateLimit.window_start == window_start(now, LOGIN_WINDOW))
    session.execute(delete(RateLimit).where(*current, RateLimit.count <= 1))
    session.execute(
        update(RateLimit).where(*current, RateLimit.count > 1).values(count=RateLimit.count - 1)
    )


def authenticate(
    session: Session, email: str, password: str, ip: str, now: datetime
) -> LoginResult:
    """Check a login. The attempt is counted first, in one statement that adds and reads
    (drip.store.ratelimit), and committed before the password is checked, so attempts made at
    once each see the others: past the limit for the IP or the account, not even the right
    password is checked until the window ends. A right password gives its count back. Commits
    the counts; the caller commits the rest."""
    address = email.strip().lower()
    keys = _login_keys(address, ip)
    within = hits(session, keys, now, LOGIN_WINDOW)
    session.commit()  # counted for every other worker before any password is checked
    if not all(within.values()):
        return LoginResult(None, throttled=True)
    operator = session.scalar(select(Operator).where(Operator.email == address))
    hasher = _hasher(session)
    try:
        hasher.verify(operator.password_hash if operator else _dummy_hash(hasher), password)
        ok = operator is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or operator is None:
        return LoginResult(None)
    _give_back(session, keys, now)
    if hasher.check_needs_rehash(operator.password_hash):
        operator.password_hash = hasher.hash(password)
    operator.last_login_at = now
    return LoginResult(operator)


def first_operator_needed(session: Session, dialect: str) -> bool:
    """The embedded default (SQLite) with no operator yet."""
    return dialect == "sqlite" and not session.scalar(select(func.count()).select_from(Operator))


def first_operator(session: Session, dialect: str, now: datetime) -> str | None:
    """On the embedded default (SQLite) with no operator yet, create admin@localhost with a
    random password and return it, to be shown once; None when there is nothing to do."""
    if not first_operator_needed(session, dialect):
        return None
    password = new_password()
    create_operator(session, FIRST_OPERATOR, password, now)
    return password
