"""The one "still want the course?" email to a reader whose pause has lasted more than 60
days, sent at the start of a pass like an offer, in the reader's send window.

One email per pause, no more: the enrollment is marked (`still_wanted_at`) by a conditional
UPDATE before the hand-off, so one worker sends it, once; only a transient failure unmarks it
for the next pass, under the same Message-ID. A new pause asks afresh (drip.audience.pace
clears the mark).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from drip.audience.pace import STILL_WANTED_AFTER, holding
from drip.audience.subscriptions import record_event
from drip.content.schedule import into_window, reader_zone
from drip.content.sequences import Library, Sequence
from drip.deliverability.bounces import return_path
from drip.dispatch.outcome import Kind, Outcome, OutcomeStatus
from drip.mail.handoff import Unsendable, checked_message
from drip.mail.links import Links
from drip.mail.message_ids import new_message_id, sending_domain
from drip.mail.pace import PacedRelay
from drip.mail.render import Reader, Renderer
from drip.mail.still_wanted import STILL_WANTED, still_wanted_message
from drip.mail.transports import OnFirstSend, SendError, Transport
from drip.store.models import Enrollment, EnrollmentStatus, EventKind, Subscriber

BATCH = 200


def paused_long(session: Session, now: datetime) -> list[Enrollment]:
    """Readers paused by their own choice for more than 60 days, not asked yet."""
    return list(
        session.scalars(
            select(Enrollment)
            .join(Subscriber)
            .where(
                Enrollment.status == EnrollmentStatus.ACTIVE,
                Enrollment.paused_since <= now - STILL_WANTED_AFTER,
                Enrollment.still_wanted_at.is_(None),
                holding(now),
                Subscriber.suppressed_at.is_(None),
            )
            .order_by(Enrollment.id)
            .limit(BATCH)
        )
    )


def ask_still_wanted(
    session: Session,
    library: Library,
    renderer: Renderer,
    links: Links,
    transport: PacedRelay,
    now: datetime,
) -> list[Outcome]:
    """Ask each reader paused too long, in their window; commits each. Stops when the relay
    is down or asks drip to slow down."""
    outcomes = []
    with OnFirstSend(transport) as relay:
        for enrollment, sequence in _to_ask(session, library, now):
            transport.slot()
            if not _take(session, enrollment, now):
                continue  # another worker is asking
            outcome = _ask(session, relay, renderer, links, enrollment, sequence, now)
            outcomes.append(outcome)
            if outcome.relay_down:
                break
    return outcomes


def would_ask(session: Session, library: Library, now: datetime) -> list[Outcome]:
    """The emails a pass at `now` would send (the dry run), by the same test."""
    return [_outcome(e, OutcomeStatus.WOULD_SEND) for e, _ in _to_ask(session, library, now)]


def _to_ask(
    session: Session, library: Library, now: datetime
) -> Iterator[tuple[Enrollment, Sequence]]:
    """The readers paused too long whose course loads and whose send window is open."""
    for enrollment in paused_long(session, now):
        sequence = library.get(enrollment.sequence)
        if sequence is None:
            continue  # a broken course: a later pass asks
        zone = reader_zone(enrollment.subscriber.timezone, sequence.timezone)
        if into_window(now, sequence.window, zone) == now:
            yield enrollment, sequence


def _take(session: Session, enrollment: Enrollment, now: datetime) -> bool:
    taken = session.connection().execute(
        update(Enrollment)
        .where(Enrollment.id == enrollment.id, Enrollment.still_wanted_at.is_(None))
        .values(still_wanted_at=now)
    )
    session.commit()
    return taken.rowcount == 1


def _ask(
    session: Session,
    relay: Transport,
    renderer: Renderer,
    links: Links,
    enrollment: Enrollment,
    sequence: Sequence,
    now: datetime,
) -> Outcome:
    """Hand the email over and put it on the timeline; a transient failure unmarks the
    reader for the next pass, anything else is recorded and not tried again."""
    subscriber = enrollment.subscriber
    template = still_wanted_message(renderer, sequence)
    reader = Reader(subscriber.email, subscriber.first_name, subscriber.id, enrollment.id)
    if enrollment.pending_message_id is None:
        domain = sending_domain(template.sender, renderer.domain)
        enrollment.pending_message_id = new_message_id(
            renderer.settings.secret_key, enrollment.id, STILL_WANTED, domain
        )
        session.commit()
    mid = enrollment.pending_message_id
    try:
        relay.send(
            return_path(renderer.settings, template.sender, None, enrollment.id),
            subscriber.email,
            checked_message(subscriber.email, lambda: template.build(reader, links, mid, now)),
            name=f"{now:%Y%m%dT%H%M%S}-{enrollment.id}-{STILL_WANTED}",
        )
    except (Unsendable, SendError) as error:
        session.rollback()
        down = error.connection or (isinstance(error, SendError) and error.throttled)
        if error.transient:
            enrollment.still_wanted_at = None  # the next pass asks again, same Message-ID
            session.commit()
            return _outcome(enrollment, OutcomeStatus.RETRYING, str(error), down)
        enrollment.pending_message_id = None
        record_event(session, enrollment, EventKind.NOT_SENT, now, f"{STILL_WANTED}: {error}")
        session.commit()
        return _outcome(enrollment, OutcomeStatus.FAILED, str(error), down)
    enrollment.pending_message_id = None
    record_event(session, enrollment, EventKind.PACE_STILL_WANTED_SENT, now, mid)
    session.commit()
    return _outcome(enrollment, OutcomeStatus.SENT)


def _outcome(
    enrollment: Enrollment, status: OutcomeStatus, detail: str = "", relay_down: bool = False
) -> Outcome:
    return Outcome(
        enrollment.id,
        enrollment.subscriber.email,
        enrollment.sequence,
        STILL_WANTED,
        status,
        detail,
        relay_down,
        kind=Kind.STILL_WANTED,
    )
