"""Broadcast copies: each reader's copy of a scheduled broadcast, sent by the dispatch pass
(`send_due`) after the lessons, from the same shared pace (drip.mail.pace.PacedRelay), inside
the reader's send window, with every guarantee a lesson has: each reader once (unique row),
claimed as a lease, their status read again right before the hand-off (after the wait for
the slot), the outcome committed before the next, a message whose outcome a dying worker
did not record sent again under the same Message-ID, one retry rule (DRIP_MAX_ATTEMPTS,
`drip.mail.pace.backoff`). A copy names the reader's own courses among the broadcast's; a copy
whose course cannot be read waits, with the reason on the broadcast's page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, exists, select, update
from sqlalchemy.orm import Session

from drip.audience.subscriptions import suppress
from drip.content.schedule import into_window, reader_zone
from drip.content.sequences import Library, Sequence
from drip.deliverability.bounces import return_path
from drip.dispatch.broadcasts import READERS, lesson_key, template_for, unreadable
from drip.dispatch.outcome import Kind, Outcome, OutcomeStatus
from drip.mail.handoff import Unsendable, checked_message
from drip.mail.links import Links
from drip.mail.message_ids import new_message_id, sending_domain
from drip.mail.pace import PacedRelay, backoff
from drip.mail.render import MessageTemplate, Reader, Renderer
from drip.mail.transports import OnFirstSend, SendError, Transport
from drip.store.models import (
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    Engagement,
    Enrollment,
    Event,
    EventKind,
    RecipientStatus,
    Subscriber,
)

BATCH = 200
HOLD = timedelta(minutes=15)  # how long a copy waits when its course cannot be read


@dataclass
class Sent:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if outcome.status is OutcomeStatus.SENT:
            self.sent += 1
        elif outcome.status is OutcomeStatus.SKIPPED:
            self.skipped += 1
        else:
            self.failed += 1


def _due(now: datetime) -> Select[int]:
    """The recipient rows due at `now`, longest waiting first: the pass takes them a batch
    at a time, the dry run all of them."""
    return (
        select(BroadcastRecipient.id)
        .where(
            BroadcastRecipient.status.in_(
                [RecipientStatus.QUEUED, RecipientStatus.RETRYING, RecipientStatus.SENDING]
            ),
            BroadcastRecipient.due_at <= now,
        )
        .order_by(BroadcastRecipient.due_at)
    )


def send_due(
    session: Session,
    library: Library,
    renderer: Renderer,
    links: Links,
    transport: PacedRelay,
    now: datetime,
    worker: str,
    lease: timedelta,
) -> Sent:
    """Send the broadcast messages due at `now`, batch by batch, each after its slot of
    the shared pace; a relay that is down or asks drip to slow down ends the run."""
    result = Sent()
    postgres = session.get_bind().dialect.name == "postgresql"
    templates: dict[tuple[int, tuple[str, ...]], MessageTemplate] = {}
    while True:
        due = _due(now).limit(BATCH)
        ids = list(session.scalars(due.with_for_update(skip_locked=True) if postgres else due))
        if not ids:
            return result
        session.execute(
            update(BroadcastRecipient)
            .where(BroadcastRecipient.id.in_(ids))
            .values(status=RecipientStatus.SENDING, due_at=now + lease, lease_owner=worker)
        )
        session.commit()
        relay_down = False
        with OnFirstSend(transport) as relay:
            for rid in ids:
                row = session.get(BroadcastRecipient, rid)
                if row is None or row.lease_owner != worker:
                    continue
                if relay_down:
                    row.status, row.lease_owner = RecipientStatus.RETRYING, None
                    row.due_at = now + timedelta(minutes=1)
                    session.commit()
                    continue
                copy = _Copy(session, library, renderer, links, now, templates)
                outcome = copy.send(relay, transport, row)
                if outcome is not None:
                    result.count(outcome)
                    relay_down = outcome.relay_down
        _finish(session)
        if relay_down or len(ids) < BATCH:
            return result


def would_send(session: Session, library: Library, now: datetime) -> list[Outcome]:
    """The broadcast copies a pass at `now` would hand over (the dry run): the same rows,
    the same window, hold and status checks, nothing leased or written."""
    found = []
    for row in session.scalars(
        select(BroadcastRecipient).where(BroadcastRecipient.id.in_(_due(now)))
    ):
        place = _place(session, library, row, now)
        if not isinstance(place, _Placed):
            continue
        broadcast = session.get(Broadcast, row.broadcast_id)
        subscriber = session.get(Subscriber, row.subscriber_id)
        enrollment = session.get(Enrollment, row.enrollment_id)
        if _why_not(broadcast, subscriber, enrollment, library) or subscriber is None:
            continue
        found.append(_outcome(row, subscriber.email, place.course, OutcomeStatus.WOULD_SEND))
    return found


@dataclass(frozen=True)
class _Placed:
    """A copy whose course can be read, due now inside the reader's send window."""

    course: Sequence
    zone: ZoneInfo


def _place(
    session: Session, library: Library, row: BroadcastRecipient, now: datetime
) -> _Placed | tuple[str, datetime] | None:
    """Where a copy stands before its slot: placed; or held (why, and until when) when its
    course cannot be read, or outside the reader's window (its next opening); None when
    the reader is gone (the status check says so)."""
    found = session.execute(
        select(Enrollment.sequence, Subscriber.timezone)
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
        .where(Enrollment.id == row.enrollment_id)
    ).first()
    if found is None:
        return None
    course = library.get(found.sequence)
    if course is None:
        return unreadable(library, (found.sequence,)), now + HOLD
    zone = reader_zone(found.timezone, course.timezone)
    opens = into_window(now, course.window, zone)
    if opens != now:
        return "", opens
    return _Placed(course, zone)


def _outcome(
    row: BroadcastRecipient,
    email: str,
    course: Sequence | str,
    status: OutcomeStatus,
    detail: str = "",
    relay_down: bool = False,
) -> Outcome:
    return Outcome(
        row.enrollment_id,
        email,
        course if isinstance(course, str) else course.slug,
        lesson_key(row.broadcast_id),
        status,
        detail,
        relay_down,
        kind=Kind.BROADCAST,
    )


class _Copy:
    """One reader's copy of a broadcast: placed in their window, paced, checked, handed
    over, and its outcome recorded by the one retry rule."""

    def __init__(
        self,
        session: Session,
        library: Library,
        renderer: Renderer,
        links: Links,
        now: datetime,
        templates: dict[tuple[int, tuple[str, ...]], MessageTemplate],
    ) -> None:
        self.session, self.library, self.renderer = session, library, renderer
        self.links, self.now, self.templates = links, now, templates

    def send(self, relay: Transport, pace: PacedRelay, row: BroadcastRecipient) -> Outcome | None:
        """Hand the copy over and record the outcome; None when it was only put back
        (held, or outside the window). A message that cannot be built or addressed fails
        that recipient alone, with the reason on its timeline."""
        session, now = self.session, self.now
        place = _place(session, self.library, row, now)
        if isinstance(place, tuple):
            row.status, row.lease_owner, row.due_at = RecipientStatus.QUEUED, None, place[1]
            row.last_error = place[0] or row.last_error
            session.commit()
            return None
        pace.slot()  # the wait before the status read, not between it and the hand-off
        broadcast = session.get(Broadcast, row.broadcast_id)
        subscriber = session.get(Subscriber, row.subscriber_id)
        enrollment = session.get(Enrollment, row.enrollment_id)
        why = _why_not(broadcast, subscriber, enrollment, self.library)
        if place is None or why or broadcast is None or subscriber is None:
            row.status, row.last_error, row.lease_owner = RecipientStatus.SKIPPED, why, None
            session.commit()
            email = subscriber.email if subscriber else ""
            return _outcome(row, email, "", OutcomeStatus.SKIPPED, why)
        template = self._template(broadcast, subscriber, place.course)
        reader = Reader(subscriber.email, subscriber.first_name, subscriber.id, row.enrollment_id)

        def build() -> bytes:
            extra = {"unsubscribe_url": self.links.stop_url(row.id)}
            mid = broadcast_message_id(session, row, self.renderer, template.sender)
            return template.build(reader, self.links, mid, now, extra=extra)

        try:
            message = checked_message(subscriber.email, build)
            relay.send(
                return_path(self.renderer.settings, template.sender, None, row.enrollment_id),
                subscriber.email,
                message,
                name=f"{now:%Y%m%dT%H%M%S}-broadcast-{broadcast.id}-{row.id}",
            )
        except Unsendable as error:
            _not_sent(session, row, str(error), now)
            return _outcome(row, subscriber.email, place.course, OutcomeStatus.FAILED, str(error))
        except SendError as error:
            status = self._failed(row, subscriber, error, place)
            down = error.connection or error.throttled
            return _outcome(row, subscriber.email, place.course, status, str(error), down)
        row.status, row.sent_at, row.lease_owner = RecipientStatus.SENT, now, None
        row.attempts += 1
        row.last_error = None
        session.commit()
        return _outcome(row, subscriber.email, place.course, OutcomeStatus.SENT)

    def _template(
        self, broadcast: Broadcast, subscriber: Subscriber, course: Sequence
    ) -> MessageTemplate:
        """The copy for this reader's own courses among the broadcast's, theirs first."""
        statuses = READERS[broadcast.audience.get("readers", "both")]
        joined = set(
            self.session.scalars(
                select(Enrollment.sequence).where(
                    Enrollment.subscriber_id == subscriber.id,
                    Enrollment.sequence.in_(broadcast.audience["to"]),
                    Enrollment.status.in_(statuses),
                )
            )
        )
        others = [s for s in broadcast.audience["to"] if s in joined and s != course.slug]
        courses = (course.slug, *others)
        key = (broadcast.id, courses)
        if key not in self.templates:
            self.templates[key] = template_for(self.renderer, self.library, broadcast, courses)
        return self.templates[key]

    def _failed(
        self, row: BroadcastRecipient, subscriber: Subscriber, error: SendError, place: _Placed
    ) -> OutcomeStatus:
        """The one retry rule: a refusal for good suppresses the address; a transient one is
        tried again after `backoff`, in the reader's window, up to DRIP_MAX_ATTEMPTS; the
        relay's "slow down" charges no attempt."""
        row.last_error = str(error)
        row.lease_owner = None
        if error.throttled:
            row.status = RecipientStatus.RETRYING
            row.due_at = into_window(self.now + backoff(1), place.course.window, place.zone)
        elif not error.transient:
            row.attempts += 1
            row.status = RecipientStatus.FAILED
            suppress(self.session, subscriber, self.now, str(error))
        elif row.attempts + 1 >= self.renderer.settings.max_attempts:
            row.attempts += 1
            row.status = RecipientStatus.FAILED
        else:
            row.attempts += 1
            row.status = RecipientStatus.RETRYING
            wait = backoff(row.attempts)
            row.due_at = into_window(self.now + wait, place.course.window, place.zone)
        self.session.commit()
        status = {
            RecipientStatus.FAILED: OutcomeStatus.FAILED,
            RecipientStatus.RETRYING: OutcomeStatus.RETRYING,
        }
        return status[RecipientStatus(row.status)]


def _not_sent(session: Session, row: BroadcastRecipient, reason: str, now: datetime) -> None:
    """A recipient whose message cannot be built or addressed: failed, with the reason on
    the row and on the reader's timeline."""
    row.status, row.last_error, row.lease_owner = RecipientStatus.FAILED, reason, None
    row.attempts += 1
    session.add(
        Event(
            subscriber_id=row.subscriber_id,
            enrollment_id=row.enrollment_id,
            kind=EventKind.NOT_SENT,
            at=now,
            detail=f"broadcast {row.broadcast_id}: {reason}",
        )
    )
    session.commit()


def _why_not(
    broadcast: Broadcast | None,
    subscriber: Subscriber | None,
    enrollment: Enrollment | None,
    library: Library,
) -> str:
    """Read right before the hand-off: why this reader must not get it now, or ""."""
    if broadcast is None or broadcast.status == BroadcastStatus.CANCELLED:
        return "the broadcast was cancelled"
    if subscriber is None or enrollment is None:
        return "the reader was erased"
    if subscriber.suppressed_at is not None:
        return "the address is suppressed"
    if subscriber.broadcasts_off_at is not None:
        return "the reader asked for no more broadcasts"
    if subscriber.engagement == Engagement.GONE:  # engagement (drip.audience.engagement)
        return "the reader is gone: no answer to “Still want these?”"
    if enrollment.status not in READERS["both"] and not any(
        e.status in READERS["both"]
        for e in subscriber.enrollments
        if e.sequence in broadcast.audience["to"]
    ):
        return "the reader left"
    return ""


def _finish(session: Session) -> None:
    """A scheduled broadcast with no recipient left to send is done."""
    open_rows = select(BroadcastRecipient.id).where(
        BroadcastRecipient.broadcast_id == Broadcast.id,
        BroadcastRecipient.status.in_(
            [RecipientStatus.QUEUED, RecipientStatus.SENDING, RecipientStatus.RETRYING]
        ),
    )
    session.execute(
        update(Broadcast)
        .where(Broadcast.status == BroadcastStatus.SCHEDULED, ~exists(open_rows))
        .values(status=BroadcastStatus.DONE)
    )
    session.commit()


def broadcast_message_id(
    session: Session, row: BroadcastRecipient, renderer: Renderer, sender: str
) -> str:
    """One reader's copy of a broadcast: written on the row before the hand-off, so a retry
    of it (a worker died after the hand-off) carries the same id."""
    if row.message_id is None:
        domain = sending_domain(sender, renderer.domain)
        row.message_id = new_message_id(
            renderer.settings.secret_key, row.enrollment_id, lesson_key(row.broadcast_id), domain
        )
        session.commit()
    return row.message_id
