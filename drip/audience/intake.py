"""The sign-up queue: the web accepts a sign-up with one insert, the worker takes it in.

Accepting costs one row, however much taking in costs (finding the reader, enrolling, the
consent record, the timeline), so a burst of sign-ups from a popular post never waits long on
the database's single writer. Every sign-up is also answered alike, new address or known, so
not even the answer's timing tells anyone who is subscribed.

The row holds everything the reader sent and the consent as shown. `take_in` runs at the
start of every dispatch pass, so the confirmation email goes out in that same pass. It runs
`subscribe` and deletes the row in one transaction: a sign-up is neither lost nor taken in
twice, and PostgreSQL workers skip the rows another worker is taking in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from drip.audience.subscriptions import Consent, SubscriptionError, subscribe
from drip.audience.tags import add_tags
from drip.content.sequences import Library
from drip.mail.headers import header_safe
from drip.store.models import SignUpRequest

log = logging.getLogger(__name__)
TAGS = "tags"  # the key in a queued sign-up's answers that holds the tags it brings

BATCH = 200  # per transaction: on SQLite, web sign-ups wait for one batch at most (~0.1 s)


def queued_row(
    sequence: str,
    email: str,
    received_at: datetime,
    consent: Consent,
    *,
    first_name: str = "",
    timezone: str | None = None,
    attributes: dict[str, Any] | None = None,
    tags: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The queued sign-up's row, by column: `email` normalised, `timezone` a known zone or
    None, `tags` clean (kept among the answers, under TAGS)."""
    if tags:
        attributes = {**(attributes or {}), TAGS: list(tags)}
    return {
        "received_at": received_at,
        "sequence": sequence,
        "email": email,
        "first_name": header_safe(first_name)[:100],
        "timezone": timezone,
        "attributes": dict(attributes or {}),
        "source": consent.source[:200],
        "consent_text": consent.text,
        "ip": consent.ip,
        "user_agent": consent.user_agent,
        "problem": None,
    }


# Every column but the id named, and no id read back (inline), so the statement can also be
# compiled once and run on a driver's cursor (drip.audience.signup_queue).
INSERT = (
    insert(SignUpRequest)
    .inline()
    .values({c.name: bindparam(c.name) for c in SignUpRequest.__table__.c if c.name != "id"})
)


def accept(
    session: Session,
    sequence: str,
    email: str,
    received_at: datetime,
    consent: Consent,
    **details: Any,
) -> None:
    """Queue a checked sign-up (`details` as `queued_row` takes them) in the caller's
    transaction; the web's sign-ups queue theirs on the driver's cursor instead
    (drip.audience.signup_queue)."""
    row = queued_row(sequence, email, received_at, consent, **details)
    session.connection().execute(INSERT, row)


@dataclass
class Intake:
    """What one `take_in` did."""

    taken: int = 0
    held: dict[int, str] = field(default_factory=dict)  # request id -> why it still waits
    interrupted: str = ""  # why taking in stopped early, to be tried again next pass

    def summary(self) -> str:
        parts = [f"{self.taken} sign-up{'s' if self.taken != 1 else ''} taken in"]
        if self.held:
            parts.append(f"{len(self.held)} waiting ({'; '.join(sorted(set(self.held.values())))})")
        if self.interrupted:
            parts.append(f"stopped early: {self.interrupted}")
        return ", ".join(parts)


def _why_held(library: Library, slug: str) -> str:
    if library.get(slug) is not None:
        return ""
    return (
        library.broken_reason(slug) or f"sequence {slug!r} is not in the sequences folder any more"
    )


def take_in(session: Session, library: Library, *, batch: int = BATCH) -> Intake:
    """Turn every waiting sign-up into a reader and an enrollment, oldest first.

    A sign-up whose sequence is broken or gone waits, with the reason on its row, and is
    taken in once the sequence is readable again. Times are the sign-up's own: the consent
    record and the timeline say when the reader signed up, not when the worker got to it.
    """
    report = Intake()
    postgres = session.get_bind().dialect.name == "postgresql"
    after = 0
    while True:
        query = (
            select(SignUpRequest)
            .where(SignUpRequest.id > after)
            .order_by(SignUpRequest.id)
            .limit(batch)
        )
        if postgres:
            query = query.with_for_update(skip_locked=True)
        rows = session.scalars(query).all()
        if not rows:
            break
        taken = 0
        try:
            for row in rows:
                why = _why_held(library, row.sequence) or _take_one(session, library, row)
                if why:
                    report.held[row.id] = why
                    if row.problem != why:
                        row.problem = why
                    continue
                session.delete(row)
                taken += 1
            session.commit()
        except IntegrityError as error:
            # another process (a second worker, `drip subscribe`) created the same reader at
            # the same moment: this batch is undone whole and taken in again next pass
            session.rollback()
            report.interrupted = f"a reader was created at the same time ({error.orig})"
            log.warning("taking in sign-ups: %s; trying again next pass", report.interrupted)
            break
        report.taken += taken
        after = rows[-1].id
        if len(rows) < batch:
            break
    return report


def _take_one(session: Session, library: Library, row: SignUpRequest) -> str:
    """Subscribe one waiting sign-up, with its tags; "" when taken in, else why not."""
    answers = dict(row.attributes or {})
    tags = answers.pop(TAGS, [])
    try:
        enrollment = subscribe(
            session,
            library,
            row.sequence,
            row.email,
            row.received_at,
            consent=Consent(row.source, row.consent_text, row.ip, row.user_agent),
            first_name=row.first_name,
            timezone=row.timezone,
            attributes=answers,
        )
    except SubscriptionError as error:  # checked before anything is written
        return str(error)
    if tags:
        add_tags(session, enrollment.subscriber, tags, row.received_at, row.source, library)
    return ""


def waiting(session: Session) -> int:
    """How many sign-ups wait to be taken in."""
    return session.scalar(select(func.count()).select_from(SignUpRequest)) or 0
