"""One reader's JSON export (the right of access) holds their engagement, each course's
pace and the replies they wrote, newest first."""

from __future__ import annotations

import json
from datetime import date

from drip.audience.exports import reader_json
from drip.audience.pace import away, slower
from drip.audience.subscriptions import Consent
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import Engagement, Enrollment
from tests.conftest import add_replies, enroll


def test_the_export_holds_engagement_pace_and_replies(
    services: Services, clock: FrozenClock
) -> None:
    enrollment_id = enroll(services, "ada@example.org", timezone="UTC")
    tiny = services.content.library().sequences["tiny"]
    with services.sessions() as session:
        enrollment = session.get_one(Enrollment, enrollment_id)
        now = clock()
        slower(session, tiny, enrollment, now, Consent(source="test", text="x"))
        away(
            session,
            tiny,
            enrollment,
            now,
            date(2026, 12, 24),
            Consent(source="test", text="x"),
        )
        enrollment.subscriber.engagement = Engagement.QUIET
        add_replies(session, enrollment, now)
        session.commit()
        exported = json.loads(reader_json(session, enrollment.subscriber))

    assert exported["engagement"] == "quiet"
    pace = exported["enrollments"][0]["pace"]
    assert pace["slower"] is True
    assert pace["pause"]["kind"] == "away"
    assert pace["pause"]["since"] == now.isoformat()
    assert pace["pause"]["until"].startswith("2026-12-25")
    assert [(r["lesson"], r["body"]) for r in exported["replies"]] == [
        ("two", "About two."),
        ("welcome", "About welcome."),
    ]
