"""A reader's timeline keeps events of one instant in the order they were written, on both
databases, whatever order the table hands them back in."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from drip.core.clock import FrozenClock
from drip.ops.timeline import timeline
from drip.services import build_services
from drip.store.models import Enrollment, Event, EventKind
from tests.conftest import enroll, make_settings


def test_events_of_one_instant_keep_the_order_they_were_written_in(
    tmp_path: Path, backend_url: str, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, backend_url), clock=clock)
    try:
        enrollment_id = enroll(svc)
        with svc.sessions() as session:
            enrollment = session.get(Enrollment, enrollment_id)
            assert enrollment is not None
            for kind in (EventKind.GONE, EventKind.PAUSED):
                session.add(
                    Event(
                        subscriber_id=enrollment.subscriber_id,
                        enrollment_id=enrollment_id,
                        kind=kind,
                        at=clock(),
                    )
                )
            session.commit()
            # Its time rewritten (and back), the first lies after the second in PostgreSQL's
            # heap and indexes: a new row version, not one updated in place.
            gone = Event.id.in_(select(Event.id).where(Event.kind == EventKind.GONE))
            for at in (clock() + timedelta(seconds=1), clock()):
                session.execute(update(Event).where(gone).values(at=at))
                session.commit()
            texts = [entry.text for entry in timeline(session, enrollment)]
    finally:
        svc.engine.dispose()
    assert texts[-2:] == ["Gone: no answer to “Still want these?”", "Paused"]
