"""What becomes of a lesson's or confirmation's reader when no hand-off succeeds: settled
without a message (completed, held, suppressed, set aside), or after a failed hand-off by
the one retry rule every kind shares (drip.dispatch.producers.next_step). Every change is
conditional on the worker's lease (drip.dispatch.record)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    insert,
    update,
)

from drip.content.schedule import into_window, reader_zone
from drip.core.config import Settings
from drip.dispatch.plan import Send, Settle, Verdict
from drip.dispatch.producers import Next, next_step
from drip.dispatch.record import (
    LEASE_LOST,
    attempted,
    delivery_leased,
    keep_unknown,
    leased,
)
from drip.dispatch.report import Outcome, OutcomeStatus
from drip.dispatch.write_ahead import Ready
from drip.mail.pace import backoff
from drip.mail.transports import SendError
from drip.store.models import (
    HOLD_CONTENT,
    OUTCOME_UNKNOWN,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    Subscriber,
)

log = logging.getLogger(__name__)
E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
EVENTS = cast(Table, Event.__table__)


class Records:
    """One worker's records of the lessons' outcomes other than a plain hand-off."""

    def __init__(self, settings: Settings, worker_id: str) -> None:
        self.settings = settings
        self.worker_id = worker_id

    def settle(self, conn: Connection, settle: Settle, now: datetime) -> Outcome:
        values: dict[str, Any] = {"due_at": None, "lease_owner": None, "hold_reason": None}
        if settle.verdict is Verdict.SUPPRESSED:
            values.update(status=EnrollmentStatus.SUPPRESSED)
        elif settle.verdict is Verdict.HELD:
            values.update(
                due_at=settle.hold_until, last_error=settle.reason, hold_reason=HOLD_CONTENT
            )
        elif settle.verdict is Verdict.COMPLETED:
            values.update(status=EnrollmentStatus.COMPLETED, completed_at=now, next_lesson=None)
        else:
            # An address SMTP cannot carry without SMTPUTF8 would stop the pass at every
            # attempt: set the reader aside for the operator. An unconfirmed reader stays
            # unconfirmed (and expires); an active one is paused.
            values.update(last_error=settle.reason)
            if settle.claimed.status == EnrollmentStatus.ACTIVE:
                values.update(status=EnrollmentStatus.PAUSED, paused_reason=settle.reason)
        changed = conn.execute(
            update(E)
            .where(E.c.id == settle.claimed.enrollment_id, leased(self.worker_id))
            .values(**values)
        ).rowcount
        if not changed:
            return self.lost(settle.claimed.enrollment_id, settle.outcome())
        return settle.outcome()

    def lost(self, enrollment_id: int, outcome: Outcome) -> Outcome:
        """A reader whose lease this worker lost: nothing of theirs was changed."""
        log.warning("enrollment %s left alone: %s", enrollment_id, LEASE_LOST)
        return replace(outcome, status=OutcomeStatus.SKIPPED, detail=LEASE_LOST)

    def change(
        self,
        conn: Connection,
        item: Ready,
        *,
        delivery: dict[str, Any] | None = None,
        enrollment: dict[str, Any] | None = None,
    ) -> bool:
        """Update the item's delivery, then its enrollment (the order in which the tallies
        are locked), only while this worker holds the reader's lease. If it does not, roll
        back and return False: the worker that holds the reader now decides."""
        eid = item.send.claimed.enrollment_id
        changed = True
        if delivery is not None and item.delivery_id is not None:
            changed = bool(
                conn.execute(
                    update(D)
                    .where(D.c.id == item.delivery_id, delivery_leased(self.worker_id))
                    .values(**delivery)
                ).rowcount
            )
        if changed and enrollment is not None:
            changed = bool(
                conn.execute(
                    update(E)
                    .where(E.c.id == eid, leased(self.worker_id))
                    .values(hold_reason=None, **enrollment)
                ).rowcount
            )
        if not changed:
            conn.rollback()
        return changed

    def failed(self, conn: Connection, item: Ready, now: datetime, error: SendError) -> Outcome:
        """A failed hand-off, by the one retry rule every kind shares (`next_step`)."""
        send = item.send
        step = next_step(error, send.claimed.attempts, self.settings.max_attempts)
        if step is Next.REST:  # the relay's pace, not this reader's: no attempt used up
            released = self.release(conn, item, now, f"the relay asked drip to slow down: {error}")
            outcome = send.outcome(
                OutcomeStatus.RETRYING,
                f"{error}; the relay asked drip to slow down",
                relay_down=True,
                throttled=True,
            )
            return (
                outcome
                if released
                else replace(outcome, status=OutcomeStatus.SKIPPED, detail=LEASE_LOST)
            )
        if step is Next.RELEASE:  # drip's own side (the outbox's disk): no attempt used up
            log.warning("not sent, the readers wait for the next pass: %s", error)
            self.release(conn, item, now, str(error))
            return send.outcome(OutcomeStatus.RETRYING, str(error), relay_down=True)
        if step is Next.SUPPRESS:
            return self._suppress(conn, item, now, error)
        return self._tried(conn, item, now, error, give_up=step is Next.GIVE_UP)

    def _tried(
        self, conn: Connection, item: Ready, now: datetime, error: SendError, *, give_up: bool
    ) -> Outcome:
        """A transient refusal: the reader is paused after DRIP_MAX_ATTEMPTS (`give_up`),
        else tried again after `backoff`, in their window."""
        send, claimed = item.send, item.send.claimed
        attempts = claimed.attempts + 1
        note = f"{OUTCOME_UNKNOWN}: {error}" if error.unknown else str(error)
        values: dict[str, Any] = {"lease_owner": None, "attempts": attempts}
        values["last_error"] = str(error)
        if give_up:
            reason = f"gave up after {attempts} attempts: {error}"
            values.update(status=EnrollmentStatus.PAUSED, paused_reason=reason, due_at=None)
            outcome = send.outcome(OutcomeStatus.FAILED, reason)
            status = DeliveryStatus.FAILED
        else:
            values["due_at"] = retry_at = retry_time(send, now, backoff(attempts))
            again = " under the same Message-ID" if error.unknown else ""
            outcome = send.outcome(
                OutcomeStatus.RETRYING,
                f"{error}; again at {retry_at:%H:%M}{again}",
                relay_down=error.connection,
            )
            status = DeliveryStatus.RETRYING
        if not self.change(conn, item, delivery=attempted(status, now, note), enrollment=values):
            return self.lost(claimed.enrollment_id, outcome)
        conn.commit()
        return outcome

    def _suppress(self, conn: Connection, item: Ready, now: datetime, error: SendError) -> Outcome:
        """A permanent refusal: the address is suppressed, and every course it is in stops."""
        claimed = item.send.claimed
        outcome = item.send.outcome(OutcomeStatus.SUPPRESSED, str(error))
        stopped = {
            "status": EnrollmentStatus.SUPPRESSED,
            "due_at": None,
            "lease_owner": None,
            "last_error": str(error),
        }
        if not self.change(
            conn,
            item,
            delivery=attempted(DeliveryStatus.FAILED, now, str(error)),
            enrollment=stopped,
        ):
            return self.lost(claimed.enrollment_id, outcome)
        conn.execute(
            update(E)
            .where(
                E.c.subscriber_id == claimed.reader.subscriber_id,
                E.c.status.in_(
                    [EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING, EnrollmentStatus.PAUSED]
                ),
            )
            .values(**stopped)
        )
        conn.execute(
            update(S)
            .where(S.c.id == claimed.reader.subscriber_id)
            .values(suppressed_at=now, suppressed_reason=str(error))
        )
        self.event(conn, item, now, EventKind.SUPPRESSED, str(error))
        conn.commit()
        return outcome

    def unsendable(self, conn: Connection, item: Ready, now: datetime, reason: str) -> Outcome:
        """A message that cannot be built or addressed for this one reader: its delivery
        fails with the reason, on the reader's timeline too, and the reader is set aside
        for the operator as an address SMTP cannot carry is (an active one paused); the
        rest of the pass goes on."""
        claimed = item.send.claimed
        outcome = item.send.outcome(OutcomeStatus.FAILED, reason)
        values: dict[str, Any] = {"due_at": None, "lease_owner": None, "last_error": reason}
        if claimed.status == EnrollmentStatus.ACTIVE:
            values.update(status=EnrollmentStatus.PAUSED, paused_reason=reason)
        if not self.change(
            conn, item, delivery=attempted(DeliveryStatus.FAILED, now, reason), enrollment=values
        ):
            return self.lost(claimed.enrollment_id, outcome)
        self.event(conn, item, now, EventKind.NOT_SENT, f"{item.send.lesson_key}: {reason}")
        conn.commit()
        return outcome

    def release(
        self,
        conn: Connection,
        item: Ready,
        now: datetime,
        why: str = "not tried: the SMTP relay was unreachable or slowing drip down",
    ) -> bool:
        """Put back a reader the pass did not try because the relay is down or asked drip
        to slow down: no attempt used. False if the reader is another worker's now."""
        released = self.change(
            conn,
            item,
            delivery={
                "status": DeliveryStatus.RETRYING,
                "updated_at": now,
                "last_error": keep_unknown(why[:2000]),
            },
            enrollment={"due_at": retry_time(item.send, now, backoff(1)), "lease_owner": None},
        )
        if released:
            conn.commit()
        else:
            log.warning("enrollment %s left alone: %s", item.send.claimed.enrollment_id, LEASE_LOST)
        return released

    def event(
        self, conn: Connection, item: Ready, now: datetime, kind: EventKind, detail: str
    ) -> None:
        claimed = item.send.claimed
        conn.execute(
            insert(EVENTS).values(
                subscriber_id=claimed.reader.subscriber_id,
                enrollment_id=claimed.enrollment_id,
                kind=kind,
                at=now,
                detail=detail,
            )
        )


def retry_time(send: Send, now: datetime, wait: timedelta) -> datetime:
    """`wait` from now, moved into the send window unless the message goes at any hour."""
    if send.immediate:
        return now + wait
    sequence = send.sequence
    return into_window(
        now + wait, sequence.window, reader_zone(send.claimed.timezone, sequence.timezone)
    )
