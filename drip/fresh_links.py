"""Fresh links a reader asked for on a page: queued by the request (`request_magnet_link`),
sent by the dispatch pass (`send_requested`).

The request only writes a row, so its answer takes the same time whether or not the
address is known, and a slow relay never holds a web worker; the pass sends the email
as it sends every other message and records the outcome on the reader's timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.bounces import return_path
from drip.content import Library, Sequence
from drip.handoff import Unsendable, checked_message
from drip.links import Links
from drip.mailer import OnFirstSend, SendError, Transport
from drip.message_ids import new_message_id, sending_domain
from drip.models import Enrollment, EnrollmentStatus, EventKind, LinkRequest
from drip.render import Reader, Renderer
from drip.subscriptions import record_event

log = logging.getLogger(__name__)

MAGNET_LINK = "magnet-link"
HAS_MAGNET = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED, EnrollmentStatus.COMPLETED)
MAX_ATTEMPTS = 5
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


def send_requested(
    session: Session,
    library: Library,
    renderer: Renderer,
    links: Links,
    transport: Callable[[], Transport],
    now: datetime,
) -> Sent:
    """Send the queued fresh links, oldest first. Each is taken with its row locked (other
    workers skip it) and its outcome committed before the next: a transient failure keeps
    the row for the next pass, up to MAX_ATTEMPTS; anything else ends it, with the reason
    on the reader's timeline."""
    result = Sent()
    after = 0
    with OnFirstSend(transport) as relay:
        for _ in range(BATCH):
            row = session.scalar(
                select(LinkRequest)
                .where(LinkRequest.id > after)
                .order_by(LinkRequest.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if row is None:
                break
            after = row.id
            enrollment = session.get(Enrollment, row.enrollment_id)
            sequence = library.get(enrollment.sequence) if enrollment else None
            if enrollment is None or sequence is None or not _still_wanted(enrollment, sequence):
                session.delete(row)
                session.commit()
                continue
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
                row.attempts += 1
                row.last_error = str(error)
                if not error.transient or row.attempts >= MAX_ATTEMPTS:
                    log.warning("fresh link for enrollment %s not sent: %s", enrollment.id, error)
                    record_event(session, enrollment, EventKind.MAGNET_LINK_FAILED, now, str(error))
                    session.delete(row)
                result.failed += 1
                session.commit()
                if error.connection:
                    break  # the relay is down: the rest wait for the next pass
                continue
            record_event(session, enrollment, EventKind.MAGNET_LINK_SENT, now, mid)
            session.delete(row)
            session.commit()
            result.sent += 1
    return result


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
