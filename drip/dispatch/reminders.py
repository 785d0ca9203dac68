"""The confirmation's one reminder: a sign-up still unconfirmed a day after it was made gets
one plain "did you mean to sign up?" with the same signed confirm link, never a second.

Run before the lessons in every pass (a hook marked `# caps:` in drip.dispatch.pass_), from
the shared pace (drip.mail.pace.PacedRelay). Like the confirmation it answers something the
reader did, so the per-reader caps (drip.dispatch.caps) neither hold nor count it. The
reminder is marked on its enrollment (`confirm_reminded_at`) by a conditional UPDATE before
the hand-off, so one worker sends it, once; only a refusal that says trying again can help,
and that leaves no doubt the message did not go, unmarks it for the next pass. The sign-up
still expires DRIP_CONFIRM_DAYS after it was made.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from drip.content.sequences import Library, Sequence
from drip.core.paths import TEMPLATES
from drip.deliverability.bounces import return_path
from drip.dispatch.outcome import Kind, Outcome, OutcomeStatus
from drip.mail.handoff import Unsendable, checked_message
from drip.mail.links import Links
from drip.mail.message_ids import new_message_id, sending_domain
from drip.mail.pace import PacedRelay
from drip.mail.render import MessageTemplate, Reader, Renderer
from drip.mail.transports import OnFirstSend, SendError, Transport
from drip.store.models import Enrollment, EnrollmentStatus, Event, EventKind, Subscriber

REMIND_AFTER = timedelta(hours=24)  # after the sign-up, not after the confirmation email
REMINDER = "confirm-reminder"  # its name in Message-IDs, outbox files and the pass's report
BATCH = 500


def _not_reminded() -> ColumnElement[bool]:
    """No reminder for this sign-up yet: none ever, or only for an earlier one (a reader who
    left, or whose sign-up expired, and signed up again: `created_at` is the new one's)."""
    return or_(
        Enrollment.confirm_reminded_at.is_(None),
        Enrollment.confirm_reminded_at < Enrollment.created_at,
    )


def due_reminders(session: Session, now: datetime, confirm_days: int) -> list[Enrollment]:
    """Sign-ups made more than a day ago, not confirmed, not expired, whose confirmation
    went out and whose reminder has not: oldest first."""
    return list(
        session.scalars(
            select(Enrollment)
            .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
            .where(
                Enrollment.status == EnrollmentStatus.PENDING,
                Enrollment.created_at <= now - REMIND_AFTER,
                Enrollment.created_at >= now - timedelta(days=confirm_days),
                Enrollment.confirmation_sent_at.is_not(None),
                _not_reminded(),
                Subscriber.suppressed_at.is_(None),
            )
            .order_by(Enrollment.id)
            .limit(BATCH)
        )
    )


def would_remind(
    session: Session, library: Library, now: datetime, confirm_days: int
) -> list[Outcome]:
    """The reminders a pass at `now` would send (the dry run), nothing marked."""
    return [
        _outcome(enrollment, OutcomeStatus.WOULD_SEND)
        for enrollment in due_reminders(session, now, confirm_days)
        if library.get(enrollment.sequence) is not None
    ]


def reminder(renderer: Renderer, sequence: Sequence) -> MessageTemplate:
    return renderer.from_file(
        sequence,
        TEMPLATES / "email" / "confirm-reminder.md",
        REMINDER,
        {"sequence_title": sequence.title},
        button=("Yes, send it to me", "{{ confirm_url }}"),
    )


def remind(
    session: Session,
    library: Library,
    renderer: Renderer,
    links: Links,
    transport: PacedRelay,
    now: datetime,
) -> list[Outcome]:
    """Send the reminders due at `now`, each once; committed one by one."""
    outcomes: list[Outcome] = []
    with OnFirstSend(transport) as relay:
        for enrollment in due_reminders(session, now, renderer.settings.confirm_days):
            sequence = library.get(enrollment.sequence)
            if sequence is None:
                continue  # its course cannot be read: a later pass reminds
            transport.slot()
            if not _take(session, enrollment.id, now):
                continue  # another worker reminds this one
            try:
                mid = _hand_over(relay, renderer, links, enrollment, sequence, now)
            except (SendError, Unsendable) as error:
                outcomes.append(_not_sent(session, enrollment, error, now))
                if error.connection or (isinstance(error, SendError) and error.throttled):
                    break  # the relay is down or asks drip to wait: the rest wait too
                continue
            _event(session, enrollment, EventKind.CONFIRMATION_REMINDED, now, mid)
            session.commit()
            outcomes.append(_outcome(enrollment, OutcomeStatus.SENT))
    return outcomes


def _hand_over(
    relay: Transport,
    renderer: Renderer,
    links: Links,
    enrollment: Enrollment,
    sequence: Sequence,
    now: datetime,
) -> str:
    """Build and hand over one reminder; its Message-ID. Raises SendError, or Unsendable
    when the message cannot be built or addressed for this reader."""
    subscriber = enrollment.subscriber
    template = reminder(renderer, sequence)
    reader = Reader(subscriber.email, subscriber.first_name, subscriber.id, enrollment.id)
    domain = sending_domain(template.sender, renderer.domain)
    mid = new_message_id(renderer.settings.secret_key, enrollment.id, REMINDER, domain)
    relay.send(
        return_path(renderer.settings, template.sender, None, enrollment.id),
        subscriber.email,
        checked_message(subscriber.email, partial(template.build, reader, links, mid, now)),
        name=f"{now:%Y%m%dT%H%M%S}-{enrollment.id}-{REMINDER}",
    )
    return mid


def _take(session: Session, enrollment_id: int, now: datetime) -> bool:
    """Mark the reminder sent before its hand-off, if no other worker did."""
    taken = session.execute(
        update(Enrollment)
        .where(
            Enrollment.id == enrollment_id,
            _not_reminded(),
            Enrollment.status == EnrollmentStatus.PENDING,
        )
        .values(confirm_reminded_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return getattr(taken, "rowcount", 0) == 1


def _not_sent(
    session: Session, enrollment: Enrollment, error: SendError | Unsendable, now: datetime
) -> Outcome:
    """A refusal that may pass, of a message that surely did not go: the next pass tries
    again. Anything else (a permanent refusal, an unknown outcome): no second reminder."""
    if error.transient and not (isinstance(error, SendError) and error.unknown):
        session.execute(
            update(Enrollment)
            .where(Enrollment.id == enrollment.id)
            .values(confirm_reminded_at=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        return _outcome(enrollment, OutcomeStatus.RETRYING, str(error))
    _event(session, enrollment, EventKind.NOT_SENT, now, f"{REMINDER}: {error}")
    session.commit()
    return _outcome(enrollment, OutcomeStatus.FAILED, str(error))


def _event(
    session: Session, enrollment: Enrollment, kind: EventKind, now: datetime, detail: str
) -> None:
    session.add(
        Event(
            subscriber_id=enrollment.subscriber_id,
            enrollment_id=enrollment.id,
            kind=kind,
            at=now,
            detail=detail,
        )
    )


def _outcome(enrollment: Enrollment, status: OutcomeStatus, detail: str = "") -> Outcome:
    return Outcome(
        enrollment.id,
        enrollment.subscriber.email,
        enrollment.sequence,
        REMINDER,
        status,
        detail,
        kind=Kind.CONFIRMATION,
    )
