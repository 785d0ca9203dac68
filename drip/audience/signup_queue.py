"""A checked sign-up counted against the limits and queued, in one short transaction.

The rules are drip.audience.signup's; this is the write, on the driver's cursor with
statements compiled once (drip.store.direct): SQLAlchemy's Session and its bookkeeping
around each execution cost about three times what the two statements do (bench/PROFILE.md,
"Sign-up"). A module of its own because drip.dispatch imports drip.audience.signup's rules.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.engine import Dialect, Engine

from drip.audience import intake
from drip.audience.mail_domains import Resolver, system_resolver
from drip.audience.signup import Peer, SignUp, SignUpRefused, check, limits
from drip.audience.subscriptions import Consent
from drip.audience.tags import clean_tag
from drip.content.sequences import Sequence
from drip.core.config import Settings
from drip.store.direct import Direct
from drip.store.ratelimit import count_attempts, counting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Statements:
    """The sign-up's two statements, compiled once for a dialect and run on the driver's
    cursor (drip.store.direct): SQLAlchemy's Session and execution bookkeeping cost
    about three times what the statements do (bench/PROFILE.md, "Sign-up")."""

    counting: dict[int, Direct]  # by number of keys
    queue: Direct


@lru_cache(maxsize=8)  # one per engine's dialect; a test run makes a few
def _statements(dialect: Dialect) -> _Statements:
    return _Statements(
        {rows: Direct(counting(rows), dialect) for rows in (1, 2)},
        Direct(intake.INSERT, dialect),
    )


@contextmanager
def _transaction(engine: Engine) -> Iterator[Any]:
    """A cursor on a pooled driver connection, committed at the end; rolled back (as the
    pool returns the connection) when anything fails."""
    connection = engine.raw_connection()
    try:
        with closing(connection.cursor()) as cursor:
            yield cursor
        connection.commit()
    finally:
        connection.close()


def _count(
    cursor: Any, statements: _Statements, limits: dict[str, int], now: datetime
) -> dict[str, bool]:
    """drip.store.ratelimit's count of one attempt, on the cursor."""

    def execute(rows: int, params: dict[str, Any]) -> Iterable[tuple[str, int]]:
        return [(key, count) for key, count in statements.counting[rows].run(cursor, params)]

    return count_attempts(execute, limits, now)


def accept_sign_up(
    engine: Engine,
    sequence: Sequence,
    form: SignUp,
    peer: Peer,
    now: datetime,
    settings: Settings,
    resolver: Resolver = system_resolver,
) -> None:
    """Check a sign-up, then count it against the limits and queue it in one transaction.

    Raises SignUpRefused, after committing the counts, so refused attempts count too. A
    honeypot hit is answered like a success and stores nothing. Everything but the two
    statements is done before the transaction opens: on SQLite it holds the one write lock.
    """
    if form.honeypot.strip():
        log.info("honeypot filled on %s from %s", sequence.slug, peer.ip)
        return
    address, problem, timezone, attributes = check(sequence, form, settings, resolver)
    row = None
    if problem is None and address is not None:
        consent = Consent(
            source=peer.source,
            text=sequence.consent,
            ip=peer.ip,
            user_agent=peer.user_agent[:500] or None,
        )
        row = intake.queued_row(
            sequence.slug,
            address,
            now,
            consent,
            first_name=form.first_name,
            timezone=timezone,
            attributes=attributes,
            tags=tuple(clean_tag(tag) for tag in form.tags),
        )
    statements = _statements(engine.dialect)
    by_ip, by_address = f"signup:ip:{peer.ip}", f"signup:address:{address}"
    with _transaction(engine) as cursor:
        allowed = _count(cursor, statements, limits("signup", peer.ip, address, settings), now)
        if not allowed[by_ip]:
            problem = SignUpRefused(
                "Too many sign-ups from your network. Please try again in an hour.",
                throttled=True,
            )
        elif problem is None and not allowed[by_address]:
            problem = SignUpRefused(
                "Too many sign-ups for this address. Please try again in an hour.",
                throttled=True,
            )
        if problem is None and row is not None:
            statements.queue.run(cursor, row)
    if problem is not None or address is None:
        raise problem or SignUpRefused("Please enter your email address.")
