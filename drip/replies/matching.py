"""A reply taken in: matched to its reader and message by the signed reply address, put on
the reader's timeline (`reader.replied` for the webhooks), and, with `pause_on_reply`,
holding the reader's next lesson until an operator marks it done.

What proves a reply: its recipient is a reply address whose HMAC holds under the secret
key (drip.mail.reply_address), which only a message drip sent to that reader carried. A reply
without one, or with one that does not verify, is kept unmatched (shown apart in the admin)
and changes nobody. Auto-replies are not kept at all, and delivery reports that reached the
reply address go to the bounce handling (drip.deliverability.bounces), verified as it
verifies them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drip.audience.controls import pause, resume
from drip.audience.subscriptions import record_event
from drip.content.sequences import Library
from drip.core.config import Settings
from drip.deliverability.bounces import Policy, record_all
from drip.deliverability.mailbox import parse_report
from drip.mail.reply_address import Answered, read_reply_address
from drip.replies.incoming import Incoming, automatic, is_report
from drip.store.models import Delivery, Enrollment, EnrollmentStatus, EventKind, Reply

log = logging.getLogger(__name__)

MAX_BODY = 100_000  # characters of a reply kept: a letter, not an attachment pasted inline
MAX_SUBJECT = 998  # RFC 5322's line limit
HOLD = "replied: the next lesson waits until the reply is marked done (pause_on_reply)"


@dataclass(frozen=True)
class ReplyPolicy:
    """What taking a reply in needs from the settings."""

    secret: str = ""
    fallbacks: tuple[str, ...] = ()
    bounces: Policy = field(default_factory=Policy)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplyPolicy:
        return cls(
            secret=settings.secret_key,
            fallbacks=settings.secret_key_fallbacks,
            bounces=Policy.from_settings(settings),
        )


@dataclass(frozen=True)
class Taken:
    """What became of one incoming message."""

    status: Literal["matched", "unmatched", "duplicate", "automatic", "bounce"]
    detail: str = ""
    reply_id: int | None = None


def take(
    session: Session,
    library: Library,
    incoming: Incoming,
    now: datetime,
    policy: ReplyPolicy,
    raw: bytes | None = None,
) -> Taken:
    """Take one message in (the caller commits). `raw`: the whole message, when the source
    gave it, so a delivery report can go to the bounce handling."""
    if is_report(incoming):
        if raw is None:
            return Taken("bounce", "a mail server's report: left to the bounce webhook")
        parsed = parse_report(raw, policy.bounces)
        recorded = record_all(session, parsed.reports, now, policy.bounces)
        return Taken("bounce", "; ".join(map(str, recorded)) or parsed.note)
    reason = automatic(incoming)
    if reason is not None:
        log.info("reply from %s is automatic (%s): not counted", incoming.sender, reason)
        return Taken("automatic", reason)
    known = session.scalar(select(Reply.id).where(Reply.key == incoming.key))
    if known is not None:
        return Taken("duplicate", reply_id=known)
    answered = _answered(incoming, policy)
    enrollment = session.get(Enrollment, answered.enrollment_id) if answered else None
    reply = Reply(
        key=incoming.key,
        received_at=now,
        source=incoming.source,
        sender=incoming.sender[:320],
        subject=incoming.subject[:MAX_SUBJECT],
        body=incoming.body[:MAX_BODY],
        matched=False,
    )
    session.add(reply)
    if answered is None or enrollment is None:
        reply.note = (
            "its reader is no longer in drip"
            if answered
            else "not sent to a signed reply address: it proves no reader or lesson"
        )
        session.flush()
        log.warning("reply from %s kept unmatched: %s", incoming.sender, reply.note)
        return Taken("unmatched", reply.note, reply.id)
    _match(session, library, reply, enrollment, answered.label, now)
    session.flush()
    return Taken("matched", f"{enrollment.sequence}/{reply.lesson}", reply.id)


def _answered(incoming: Incoming, policy: ReplyPolicy) -> Answered | None:
    """The first recipient that is a signed reply address. Any domain: the signature is the
    proof, so replies to lessons sent before DRIP_REPLY_ADDRESS changed still match."""
    for address in incoming.recipients:
        found = read_reply_address(address, policy.secret, policy.fallbacks)
        if found is not None:
            return found
    return None


def _match(
    session: Session,
    library: Library,
    reply: Reply,
    enrollment: Enrollment,
    label: str,
    now: datetime,
) -> None:
    """The reply as its reader's: the lesson it answers, the timeline, the hold."""
    lesson = session.scalar(
        select(Delivery.lesson).where(
            Delivery.enrollment_id == enrollment.id, func.lower(Delivery.lesson) == label
        )
    )
    reply.matched, reply.lesson = True, lesson or label
    reply.subscriber_id, reply.enrollment_id = enrollment.subscriber_id, enrollment.id
    reply.sequence = enrollment.sequence
    record_event(session, enrollment, EventKind.REPLIED, now, f"{reply.lesson}: {reply.subject}")
    sequence = library.get(enrollment.sequence)
    if sequence is not None and sequence.pause_on_reply:
        if enrollment.status == EnrollmentStatus.ACTIVE:
            pause(session, enrollment, now, HOLD)
        reply.holds = enrollment.status == EnrollmentStatus.PAUSED and (
            enrollment.paused_reason == HOLD
        )


class NoSuchReply(LookupError):
    """The reply to mark is not there (deleted with its reader, or a wrong id)."""


def mark_done(
    session: Session, library: Library, reply_id: int, now: datetime, operator: str
) -> Reply:
    """The operator has dealt with the reply; a reader it held gets their next lesson once
    no other reply of theirs still holds it."""
    reply = session.get(Reply, reply_id)
    if reply is None:
        raise NoSuchReply(f"reply {reply_id} is not there")
    if reply.done_at is None:
        reply.done_at, reply.done_by = now, operator
    if reply.holds and reply.enrollment_id is not None:
        reply.holds = False
        enrollment = session.get(Enrollment, reply.enrollment_id)
        still = session.scalar(
            select(func.count()).where(
                Reply.enrollment_id == reply.enrollment_id, Reply.holds.is_(True)
            )
        )
        if enrollment is not None and not still and enrollment.paused_reason == HOLD:
            resume(session, library, enrollment, now)
    return reply
