"""Many due readers at once, and a broadcast sent to them, written with Core in a statement or
two: the ORM path would take minutes."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, insert, literal, select
from sqlalchemy.engine import Engine

from drip.store.models import (
    Broadcast,
    BroadcastRecipient,
    Enrollment,
    EnrollmentStatus,
    RecipientStatus,
    Subscriber,
)

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


def add_sent_broadcast(
    conn: Connection, at: datetime, readers: Collection[int] | None = None, name: str = "news"
) -> int:
    """A broadcast sent at `at`, its copy handed at `at` to every enrollment of `readers`
    (subscriber ids; None: of everyone), in one statement; the broadcast's id."""
    broadcast = conn.execute(
        insert(Broadcast)
        .values(name=name, subject="News", body="News.", audience={}, send_at=at)
        .values(status="sent", created_at=at)
        .returning(Broadcast.id)
    ).scalar_one()
    copies = select(
        literal(broadcast),
        ENROLLMENTS.c.subscriber_id,
        ENROLLMENTS.c.id,
        literal(RecipientStatus.SENT.value),
        literal(at, BroadcastRecipient.sent_at.type),
        literal(at, BroadcastRecipient.sent_at.type),
    )
    if readers is not None:
        copies = copies.where(ENROLLMENTS.c.subscriber_id.in_(list(readers)))
    columns = ["broadcast_id", "subscriber_id", "enrollment_id", "status", "due_at", "sent_at"]
    conn.execute(insert(BroadcastRecipient).from_select(columns, copies))
    return broadcast
