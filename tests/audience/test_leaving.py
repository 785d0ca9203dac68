"""Leaving: one course, every course (a reader's "all of them" and a spam complaint alike),
and the deliveries still waiting to be handed off cancelled with it."""

from __future__ import annotations

from sqlalchemy import select

from drip.audience.leaving import leave_everything, suppress, unsubscribe
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
)
from tests.conftest import enroll


def _delivery(services: Services, enrollment_id: int, lesson: str, status: DeliveryStatus) -> int:
    now = services.clock()
    with services.sessions() as session:
        delivery = Delivery(
            enrollment_id=enrollment_id,
            lesson=lesson,
            lesson_version="v1",
            status=status,
            attempts=1,
            message_id=f"<{status}@drip.test>",
            created_at=now,
            updated_at=now,
        )
        session.add(delivery)
        session.commit()
        return delivery.id


def test_leaving_everything_ends_the_course_and_cancels_only_what_was_not_handed_off(
    services: Services, clock: FrozenClock
) -> None:
    enrollment_id = enroll(services)
    sent = _delivery(services, enrollment_id, "welcome", DeliveryStatus.SENT)
    retrying = _delivery(services, enrollment_id, "day-2", DeliveryStatus.RETRYING)
    clock.advance(minutes=1)
    with services.sessions() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        assert enrollment is not None
        left = leave_everything(
            session, enrollment.subscriber, clock(), "spam complaint", reason="ARF abuse"
        )
        session.commit()
        assert [e.id for e in left] == [enrollment_id]
    with services.sessions() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        delivery = session.get(Delivery, retrying)
        handed_off = session.get(Delivery, sent)
        assert enrollment is not None and delivery is not None and handed_off is not None
        assert enrollment.status == EnrollmentStatus.UNSUBSCRIBED
        assert enrollment.due_at is None and enrollment.last_error == "ARF abuse"
        assert delivery.status == DeliveryStatus.CANCELLED
        assert handed_off.status == DeliveryStatus.SENT
        details = session.scalars(
            select(Event.detail).where(
                Event.enrollment_id == enrollment_id, Event.kind == EventKind.UNSUBSCRIBED
            )
        ).all()
        assert details == ["spam complaint"]


def test_a_suppressed_course_stays_suppressed_when_left_alone_but_leaving_everything_ends_it(
    services: Services, clock: FrozenClock
) -> None:
    enrollment_id = enroll(services)
    with services.sessions() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        assert enrollment is not None
        suppress(session, enrollment.subscriber, clock(), "550 no such user")
        session.commit()
    with services.sessions() as session:
        assert unsubscribe(session, enrollment_id, clock(), how="link") == []
        session.commit()
        enrollment = session.get(Enrollment, enrollment_id)
        assert enrollment is not None and enrollment.status == EnrollmentStatus.SUPPRESSED
    with services.sessions() as session:
        left = unsubscribe(session, enrollment_id, clock(), everything=True, how="unsubscribe page")
        session.commit()
        assert [e.status for e in left] == [EnrollmentStatus.UNSUBSCRIBED]
    with services.sessions() as session:
        again = unsubscribe(session, enrollment_id, clock(), everything=True, how="twice")
        assert again == []  # already out: no second event, nothing to cancel
