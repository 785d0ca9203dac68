"""Readers' replies forwarded to the author's own address (`forward_replies_to:` in
site.yaml), so the author can answer from their mail app: the forward's Reply-To is the
reader, and it goes out through the same transport as the lessons.

The reply's row is written when it arrives; the forward follows in the worker and marks the
row, so a relay that is down only delays it. Only matched replies are forwarded (an
unmatched one proves nothing and stays in the admin), and only those of the last day: an
address set today does not flood the author with last year's replies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.mail.transports import SendError, Transport, envelope_sender
from drip.replies.incoming import split_quoted
from drip.store.models import Reply

log = logging.getLogger(__name__)

RECENT = timedelta(days=1)
BATCH = 50


def forward_message(reply: Reply, to: str, sender: str, now: datetime) -> bytes:
    """The forward: from drip's sender, to the author, answering goes to the reader."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Reply-To"] = reply.sender
    message["Subject"] = f"Reply from {reply.sender}: {reply.subject}"[:300]
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=envelope_sender(sender).rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-forwarded"  # RFC 3834: no auto-reply comes back
    written, _quoted = split_quoted(reply.body)
    message.set_content(
        f"{reply.sender} replied to “{reply.lesson}” ({reply.sequence}).\n"
        "Answer this email to write back to them.\n\n"
        f"{written or reply.body}\n"
    )
    return bytes(message)


def forward_replies(
    session: Session, transport: Callable[[], Transport], to: str, sender: str, now: datetime
) -> int:
    """Forward the matched replies not yet forwarded; how many went. The relay is opened
    only when there is something to forward; a send that fails leaves the rest for the
    next pass."""
    rows = session.scalars(
        select(Reply)
        .where(
            Reply.matched.is_(True),
            Reply.forwarded_at.is_(None),
            Reply.received_at >= now - RECENT,
        )
        .order_by(Reply.id)
        .limit(BATCH)
    ).all()
    sent = 0
    if not rows:
        return sent
    with transport() as relay:
        sent = _forward(session, relay, rows, to, sender, now)
    return sent


def _forward(
    session: Session, relay: Transport, rows: Sequence[Reply], to: str, sender: str, now: datetime
) -> int:
    sent = 0
    for reply in rows:
        try:
            message = forward_message(reply, to, sender, now)
        except ValueError as error:  # a sender no header can carry: never forwardable
            log.warning("reply %s cannot be forwarded: %s", reply.id, error)
            reply.forwarded_at = now
            session.commit()
            continue
        try:
            relay.send(
                envelope_sender(sender), to, message, name=f"{now:%Y%m%dT%H%M%S}-reply-{reply.id}"
            )
        except SendError as error:
            log.warning("forwarding reply %s to %s failed: %s", reply.id, to, error)
            break
        reply.forwarded_at = now
        session.commit()
        sent += 1
    return sent
