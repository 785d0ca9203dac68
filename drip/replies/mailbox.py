"""The reply mailbox over IMAP (`DRIP_REPLY_IMAP_URL`), read before each pass as the bounce
mailbox is (drip.deliverability.mailbox, whose connection this shares).

Each new message is taken in (drip.replies.matching): a reply, matched or not, is stored and
its message moved to `DRIP_REPLY_IMAP_PROCESSED`; a delivery report goes to the bounce
handling and moves too; an auto-reply stays where it is, marked with a keyword so later
passes skip it without reading it again. What a message did is committed before it moves:
a failed move means a re-read, and the reply's key makes the second one a duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from drip.content.sequences import Library
from drip.deliverability.mailbox import BounceMailbox, waiting_note
from drip.replies.incoming import from_mime
from drip.replies.matching import ReplyPolicy, Taken, take

log = logging.getLogger(__name__)

LEFT = "DripNotAReply"  # keyword on auto-replies, left in place


@dataclass
class ReplyPass:
    read: int = 0
    taken: list[Taken] = field(default_factory=list)
    waiting: int = 0  # new messages past this pass's PER_PASS

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for taken in self.taken:
            counts[taken.status] = counts.get(taken.status, 0) + 1
        said = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        return f"reply mailbox: {self.read} read ({said or 'nothing new'})" + waiting_note(
            self.waiting
        )


class ReplyMailbox(BounceMailbox):
    """One IMAP session per pass, to the folder `DRIP_REPLY_IMAP_URL` names."""

    def read(
        self, session: Session, library: Library, now: datetime, policy: ReplyPolicy
    ) -> ReplyPass:
        """Take in every new reply and move it; leave an auto-reply, flagged."""
        result = ReplyPass()

        def handle(raw: bytes) -> bool:
            result.read += 1
            taken = _take(session, library, raw, now, policy)
            result.taken.append(taken)
            return taken.status != "automatic"

        result.waiting = self.each_new(LEFT, handle)
        return result


def _take(
    session: Session, library: Library, raw: bytes, now: datetime, policy: ReplyPolicy
) -> Taken:
    """Committed before the message moves; a webhook taking the same message in at the
    same moment makes this one a duplicate."""
    for attempt in (1, 2):
        try:
            taken = take(session, library, from_mime(raw, "mailbox"), now, policy, raw=raw)
            session.commit()
            return taken
        except IntegrityError:
            session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def read_replies(
    session: Session,
    library: Library,
    url: str,
    processed: str,
    now: datetime,
    policy: ReplyPolicy,
) -> ReplyPass:
    return ReplyMailbox(url, processed).read(session, library, now, policy)
