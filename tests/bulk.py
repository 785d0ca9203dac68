"""Many due readers at once, written with Core executemany: the ORM path would take minutes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Engine

from drip.store.models import Enrollment, EnrollmentStatus, Subscriber

SUBSCRIBERS = cast(Table, Subscriber.__table__)
ENROLLMENTS = cast(Table, Enrollment.__table__)


def address(n: int) -> str:
    return f"reader{n:05d}@example.org"


def add_due_readers(
    engine: Engine, count: int, now: datetime, *, sequence: str = "tiny", lesson: str = "welcome"
) -> list[str]:
    """`count` confirmed readers whose `lesson` is due a minute before `now`; their addresses."""
    people = [
        {
            "email": address(n),
            "first_name": f"Reader{n}",
            "timezone": "America/New_York",
            "attributes": {},
            "created_at": now - timedelta(days=1),
        }
        for n in range(count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(SUBSCRIBERS), people)
        ids = {
            row.email: row.id for row in conn.execute(select(SUBSCRIBERS.c.email, SUBSCRIBERS.c.id))
        }
        conn.execute(
            insert(ENROLLMENTS),
            [
                {
                    "subscriber_id": ids[p["email"]],
                    "sequence": sequence,
                    "status": EnrollmentStatus.ACTIVE,
                    "next_lesson": lesson,
                    "due_at": now - timedelta(minutes=1),
                    "attempts": 0,
                    "created_at": now - timedelta(days=1),
                    "confirmed_at": now - timedelta(days=1),
                }
                for p in people
            ],
        )
    return [str(p["email"]) for p in people]
