"""Fresh links a reader asked for on a page: queued by the request (`request_magnet_link`),
sent by the dispatch pass (`send_requested`).

The request only writes a row, so its answer takes the same time whether or not the
address is known, and a slow relay never holds a web worker; the pass sends the email
as it sends every other message and records the outcome on the reader's timeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from drip.audience.subscriptions import record_event
from drip.content.sequences import Library, Sequence
from drip.deliverability.verp import return_path
from drip.dispatch.outcome import Kind, Outcome, OutcomeStatus
from drip.mail.handoff import Unsendable, checked_message
from drip.mail.links import Links
from drip.mail.message_ids import new_message_id, sending_domain
from drip.mail.pace import PacedRelay
from drip.mail.render import Reader, Renderer
from drip.mail.transports import OnFirstSend, SendError, Transport
from drip.store.models import Enrollment, EnrollmentStatus, EventKind, LinkRequest

log = logging.getLogger(__name__)

MAGNET_LINK = "magnet-link"
HAS_MAGNET = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED, EnrollmentStatus.COMPLETED)
BATCH = 200


def request_magnet_link(session: Session, enrollment: Enrollment, now: datetime) -> bool:
    """Queue a fresh download link for a reader who has the course; False if they have none
    (or one is already queued). The caller commits."""
    if enrollment.status not in HAS_MAGNET or enrollment.subscriber.suppressed_at is not None:
        return False
    queued = session.scalar(
        select(LinkRequest.id).where(
            LinkRequest.enrollment_id == enrollment.id, LinkRequest.kind == MAGNET_LINK
        )
    )
    if queued is not None:
        return False
    session.add(LinkRequest(enrollment_id=enrollment.id, kind=MAGNET_LINK, requested_at=now))
    return True


@dataclass
class Sent:
    """What one `send_requested` did."""

    sent: int = 0
    failed: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


def send_requested(
    session: Session,
    library: Library,
    renderer: Renderer,
    links: Links,
    transport: PacedRelay,
    now: datetime,
) -> Sent:
    """Send the queued fresh links, oldest first. Each is taken with its row locked (other
    workers skip it), waits for its slot of the shared pace, and has its outcome committed
    before the next: a transient failure keeps the row for the next pass, up to
    DRIP_MAX_ATTEMPTS; a relay's "slow down" stops the run and charges nobody; anything
    else ends it, with the reason on the reader's timeline. Never outside the send
    window's hours either way: the reader asked and is waiting for it."""
    result = Sent()
    after = 0
    with OnFirstSend(transport) as relay:
        for _ in range(BATCH):
            row = session.scalar(_queued(after).with_for_update(skip_locked=True))
            if row is None:
                break
            after = row.id
            transport.slot()  # the wait before the status read, not between it and the hand-off
            wanted = _wanted(session, library, row)
            if wanted is None:
                session.delete(row)
                session.commit()
                continue
            enrollment, sequence = wanted
            if row.message_id is None:
                template = renderer.magnet_link(sequence)
                taken = _with_message_id(session, row, enrollment.id, renderer, template.sender)
                if taken is None:
                    continue  # another worker took it meanwhile
                row = taken
            try:
                mid = _hand_over(
                    relay, renderer, links, enrollment, sequence, row.message_id or "", now
                )
            except (SendError, Unsendable) as error:  # Unsendable: this reader's alone
                status = _not_sent(
                    session, row, enrollment, error, now, renderer.settings.max_attempts
                )
                result.failed += 1
                result.outcomes.append(_outcome(enrollment, status, str(error)))
                session.commit()
                if error.connection or _throttled(error):
                    break  # the relay is down or asks drip to wait: the rest wait too
                continue
            record_event(session, enrollment, EventKind.MAGNET_LINK_SENT, now, mid)
            session.delete(row)
            session.commit()
            result.sent += 1
            result.outcomes.append(_outcome(enrollment, OutcomeStatus.SENT))
    return result


def would_send(session: Session, library: Library) -> list[Outcome]:
    """The fresh links a pass now would send (the dry run), by the same test."""
    found = []
    for row in session.scalars(_queued(0).limit(BATCH)):
        wanted = _wanted(session, library, row)
        if wanted is not None:
            found.append(_outcome(wanted[0], OutcomeStatus.WOULD_SEND))
    return found


def _queued(after: int) -> Select[LinkRequest]:
    return select(LinkRequest).where(LinkRequest.id > after).order_by(LinkRequest.id).limit(1)


def _wanted(
    session: Session, library: Library, row: LinkRequest
) -> tuple[Enrollment, Sequence] | None:
    """The reader and course of a queued link, if it is still to be sent."""
    enrollment = session.get(Enrollment, row.enrollment_id)
    sequence = library.get(enrollment.sequence) if enrollment else None
    if enrollment is None or sequence is None or not _still_wanted(enrollment, sequence):
        return None
    return enrollment, sequence


def _not_sent(
    session: Session,
    row: LinkRequest,
    enrollment: Enrollment,
    error: SendError | Unsendable,
    now: datetime,
    max_attempts: int,
) -> OutcomeStatus:
    """Record a failed hand-off by the one retry rule (DRIP_MAX_ATTEMPTS); what became of
    the link."""
    if _throttled(error):
        return OutcomeStatus.RETRYING  # the relay's pace, not this reader's: no attempt
    row.attempts += 1
    row.last_error = str(error)
    if error.transient and row.attempts < max_attempts:
        return OutcomeStatus.RETRYING
    log.warning("fresh link for enrollment %s not sent: %s", enrollment.id, error)
    record_event(session, enrollment, EventKind.MAGNET_LINK_FAILED, now, str(error))
    session.delete(row)
    return OutcomeStatus.FAILED


def _throttled(error: SendError | Unsendable) -> bool:
    return isinstance(error, SendError) and error.throttled


def _outcome(enrollment: Enrollment, status: OutcomeStatus, detail: str = "") -> Outcome:
    return Outcome(
        enrollment.id,
        enrollment.subscriber.email,
        enrollment.sequence,
        MAGNET_LINK,
        status,
        detail,
        kind=Kind.FRESH_LINK,
    )


def _still_wanted(enrollment: Enrollment, sequence: Sequence) -> bool:
    """The reader still has the course's lead magnet and may be written to."""

    """A fresh link goes only to a reader who still has the course and its lead magnet."""
    return (
        sequence.lead_magnet is not None
        and enrollment.status in HAS_MAGNET
        and enrollment.subscriber.suppressed_at is None
    )


def _hand_over(
    relay: Transport,
    renderer: Renderer,
    links: Links,
    enrollment: Enrollment,
    sequence: Sequence,
    mid: str,
    now: datetime,
) -> str:
    """Build and hand over one fresh link under `mid`, the id written on its row; that id.
    Raises SendError, or Unsendable when the message cannot be built or addressed for this
    reader."""
    template = renderer.magnet_link(sequence)
    subscriber = enrollment.subscriber
    reader = Reader(subscriber.email, subscriber.first_name, subscriber.id, enrollment.id)
    relay.send(
        return_path(renderer.settings, template.sender, None, enrollment.id),
        subscriber.email,
        checked_message(subscriber.email, partial(template.build, reader, links, mid, now)),
        name=f"{now:%Y%m%dT%H%M%S}-{enrollment.id}-{MAGNET_LINK}",
    )
    return mid


def _with_message_id(
    session: Session, row: LinkRequest, enrollment_id: int, renderer: Renderer, sender: str
) -> LinkRequest | None:
    """Write the row's Message-ID before the hand-off (a retry of the row reuses it), then
    take the row again; None if another worker has it now."""
    domain = sending_domain(sender, renderer.domain)
    row.message_id = new_message_id(
        renderer.settings.secret_key, enrollment_id, MAGNET_LINK, domain
    )
    session.commit()
    return session.scalar(
        select(LinkRequest).where(LinkRequest.id == row.id).with_for_update(skip_locked=True)
    )
