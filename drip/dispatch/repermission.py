"""The re-permission email: one plain "Still want these?" to a reader gone quiet
(drip.audience.engagement), with a "Keep them coming" button and a "stop them" link, each
opening a page with one button (drip.web.public.engagement).

A producer beside the lessons, sent by the dispatch pass from the shared budget, inside
the reader's send window. The question is claimed on the reader before the hand-off
(`repermission_at`), so two workers never both ask: one email per quiet spell. A
transient failure unclaims it for a later pass; a refusal leaves it claimed (that address
takes no mail, and in M days the reader is gone, which sends nothing more).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from drip.audience.engagement import claim_question, to_ask
from drip.audience.subscriptions import record_event
from drip.content.schedule import into_window, reader_zone
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
from drip.store.models import Enrollment, EventKind

log = logging.getLogger(__name__)

LABEL = "repermission"
BATCH = 200


@dataclass
class Asked:
    """What one `ask_quiet_readers` did."""

    sent: int = 0
    failed: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


def template(renderer: Renderer, sequence: Sequence) -> MessageTemplate:
    """The email, from templates/email/repermission.md, signed by the course's author."""
    return renderer.from_file(
        sequence,
        TEMPLATES / "email" / "repermission.md",
        LABEL,
        {},
        button=("Keep them coming", "{{ keep_url }}"),
    )


def reader_links(links: Links, enrollment_id: int) -> dict[str, str]:
    """The two signed links of the email: never expire (an old email still answers)."""
    return {
        "keep_url": links.url("keep", enrollment_id),
        "leave_url": links.url("leave", enrollment_id),
    }


def ask_quiet_readers(
    session: Session,
    library: Library,
    renderer: Renderer,
    links: Links,
    transport: PacedRelay,
    now: datetime,
) -> Asked:
    """Ask each quiet reader not yet asked, in their send window; commits each."""
    result = Asked()
    with OnFirstSend(transport) as relay:
        for enrollment in to_ask(session, library, BATCH):
            sequence = library.sequences[enrollment.sequence]
            zone = reader_zone(enrollment.subscriber.timezone, sequence.timezone)
            if into_window(now, sequence.window, zone) != now:
                continue  # outside their window: a later pass asks
            transport.slot()
            if not claim_question(session, enrollment.subscriber_id, now):
                session.rollback()
                continue  # another worker asked, or they acted meanwhile
            session.commit()
            outcome = _ask(session, relay, renderer, links, enrollment, sequence, now)
            session.commit()
            result.outcomes.append(outcome)
            result.sent += outcome.status is OutcomeStatus.SENT
            result.failed += outcome.status is not OutcomeStatus.SENT
            if outcome.relay_down:
                break
    return result


def would_ask(session: Session, library: Library, now: datetime) -> list[Outcome]:
    """The questions a pass at `now` would send (the dry run), by the same choice."""
    found = []
    for enrollment in to_ask(session, library, BATCH):
        sequence = library.sequences[enrollment.sequence]
        zone = reader_zone(enrollment.subscriber.timezone, sequence.timezone)
        if into_window(now, sequence.window, zone) == now:
            found.append(_outcome(enrollment, OutcomeStatus.WOULD_SEND))
    return found


def _ask(
    session: Session,
    relay: Transport,
    renderer: Renderer,
    links: Links,
    enrollment: Enrollment,
    sequence: Sequence,
    now: datetime,
) -> Outcome:
    """Hand the email over and put the outcome on the reader's timeline."""
    subscriber = enrollment.subscriber
    message = template(renderer, sequence)
    domain = sending_domain(message.sender, renderer.domain)
    mid = new_message_id(renderer.settings.secret_key, enrollment.id, LABEL, domain)
    reader = Reader(subscriber.email, subscriber.first_name, subscriber.id, enrollment.id)
    build = partial(message.build, reader, links, mid, now, reader_links(links, enrollment.id))
    try:
        relay.send(
            return_path(renderer.settings, message.sender, None, enrollment.id),
            subscriber.email,
            checked_message(subscriber.email, build),
            name=f"{now:%Y%m%dT%H%M%S}-{enrollment.id}-{LABEL}",
        )
    except (SendError, Unsendable) as error:
        throttled = isinstance(error, SendError) and error.throttled
        if error.transient or throttled:
            subscriber.repermission_at = None  # a later pass asks again
            status = OutcomeStatus.RETRYING
        else:
            log.warning("re-permission email to enrollment %s refused: %s", enrollment.id, error)
            record_event(session, enrollment, EventKind.NOT_SENT, now, f"{LABEL}: {error}")
            status = OutcomeStatus.FAILED
        return _outcome(enrollment, status, str(error), error.connection or throttled)
    record_event(session, enrollment, EventKind.REPERMISSION_SENT, now, mid)
    return _outcome(enrollment, OutcomeStatus.SENT)


def _outcome(
    enrollment: Enrollment, status: OutcomeStatus, detail: str = "", down: bool = False
) -> Outcome:
    return Outcome(
        enrollment.id,
        enrollment.subscriber.email,
        enrollment.sequence,
        LABEL,
        status,
        detail,
        relay_down=down,
        kind=Kind.REPERMISSION,
    )
