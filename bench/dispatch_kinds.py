"""The other kinds of message for bench/dispatch.py: a broadcast's copies and the confirmation
emails, loaded straight into the database, and the bare smtplib baseline they are measured
against (the same number of pre-built messages of the same kinds, over one connection).

A broadcast pass: `count` readers who finished the course, all of them in a broadcast due
now. A mixed pass: half lessons due, a quarter confirmations due, a quarter broadcast copies.
"""

from __future__ import annotations

import smtplib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from common import Measured, say, timed
from sqlalchemy import Table, insert
from sqlalchemy.engine import Engine

from drip.content.sequences import Sequence
from drip.dispatch import broadcasts
from drip.mail.message_ids import message_id_for
from drip.mail.render import MessageTemplate, Reader
from drip.services import Services
from drip.store.models import Broadcast, Enrollment, Subscriber

S = cast(Table, Subscriber.__table__)
E = cast(Table, Enrollment.__table__)
CHUNK = 20_000
BROADCAST = (
    """---
subject: "A new post: the interview day, hour by hour"
preheader: "What happens from the hotel lobby to the thank-you note."
to: [interview-questions]
readers: completed
---
Hello {{ first_name }},

The interview day, **hour by hour**: from the hotel lobby to the thank-you note.
[Read it on the blog](https://example.org/blog/interview-day).

"""
    + "A paragraph of the post, long enough to be a real one. " * 40
)


def load_readers(
    engine: Engine, first: int, count: int, slug: str, now: datetime, kind: str
) -> None:
    """`count` readers from id `first`: `completed` (a broadcast's audience) or `pending`
    (their confirmation due now)."""
    for start in range(0, count, CHUNK):
        ids = range(first + start, first + min(start + CHUNK, count))
        people = [
            {
                "id": i,
                "email": f"reader{i:07d}@example.org",
                "first_name": f"Reader{i}",
                "timezone": "America/New_York",
                "attributes": {},
                "created_at": now - timedelta(hours=1),
            }
            for i in ids
        ]
        pending = kind == "pending"
        enrolled = [
            {
                "id": i,
                "subscriber_id": i,
                "sequence": slug,
                "status": kind,
                "attempts": 0,
                "created_at": now - timedelta(hours=1),
                "confirmed_at": None if pending else now - timedelta(days=30),
                "completed_at": None if pending else now - timedelta(days=2),
                "due_at": now - timedelta(minutes=1) if pending else None,
            }
            for i in ids
        ]
        with engine.begin() as conn:
            conn.execute(insert(S), people)
            conn.execute(insert(E), enrolled)
    say(f"  loaded {count:,} {kind} readers")


def schedule_broadcast(svc: Services, now: datetime) -> Broadcast:
    """The broadcast to every reader who finished the course, due a minute ago."""
    library = svc.content.library()
    spec = broadcasts.parse_broadcast(BROADCAST, Path("bench.md"), library)
    with svc.sessions() as session:
        broadcast = broadcasts.schedule(session, library, spec, now - timedelta(minutes=1), now)
        session.expunge(broadcast)
    return broadcast


def broadcast_template(svc: Services, broadcast: Broadcast) -> MessageTemplate:
    return broadcasts.template_for(svc.renderer, svc.content.library(), broadcast)


def bare_smtplib(
    port: int, svc: Services, now: datetime, templates: list[tuple[MessageTemplate, int]]
) -> Measured:
    """The time and CPU bare smtplib takes to send, over one connection, `n` pre-built
    messages of each (template, n)."""
    messages: list[tuple[str, bytes]] = []
    for template, count in templates:
        for n in range(len(messages) + 1, len(messages) + count + 1):
            address = f"reader{n:07d}@example.org"
            extra: dict[str, Any] = {"unsubscribe_url": svc.links.unsubscribe_url(n)}
            mid = message_id_for(
                svc.settings.secret_key, n, "smtplib", template.sender, svc.renderer.domain
            )
            reader = Reader(address, f"Reader{n}", n, n)
            messages.append((address, template.build(reader, svc.links, mid, now, extra=extra)))
    return smtplib_sends(port, messages)


def smtplib_sends(port: int, messages: list[tuple[str, bytes]]) -> Measured:
    """Bare smtplib sending `messages` (recipient, message) over one connection, timed."""

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            for recipient, message in messages:
                smtp.sendmail("author@example.org", [recipient], message)

    measured, _ = timed(f"smtplib sending {len(messages):,} pre-built messages", send)
    return measured


def lesson_template(svc: Services, sequence: Sequence) -> MessageTemplate:
    return svc.renderer.lesson(sequence, sequence.lessons[1])
