"""The winner of a broadcast's test (drip.dispatch.broadcast_variants): when the first held
copy falls due, the variant with more clicks per reader sent (a on a tie) goes to every
held reader, and the broadcast keeps which and when; the figures the broadcast's page shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, distinct, func, select, update
from sqlalchemy.orm import Session

from drip.dispatch.broadcast_variants import HELD, decide_at, share_of
from drip.dispatch.broadcasts import lesson_key
from drip.store.models import Broadcast, BroadcastRecipient, LinkClick, RecipientStatus

RECIPIENTS = cast(Table, BroadcastRecipient.__table__)


@dataclass(frozen=True)
class ArmClicks:
    """One variant of a broadcast's test: its subject, readers sent it, their clicks."""

    name: str
    subject: str
    readers: int
    clicks: int

    @property
    def per_reader(self) -> float:
        return self.clicks / self.readers if self.readers else 0.0


@dataclass(frozen=True)
class SplitFigures:
    share: int  # percent of the audience in the test
    decide_at: str  # ISO time the rest get the winner
    arms: tuple[ArmClicks, ...]
    held: int  # readers waiting for the winner
    winner: str | None
    decided_at: str | None


def arms(session: Session, broadcast: Broadcast) -> tuple[ArmClicks, ArmClicks]:
    """a's and b's readers sent and clicks (a person's, counted; never an open)."""
    sent = select(RECIPIENTS.c.variant, func.count()).where(
        RECIPIENTS.c.broadcast_id == broadcast.id, RECIPIENTS.c.status == RecipientStatus.SENT
    )
    readers = {v: int(n) for v, n in session.execute(sent.group_by(RECIPIENTS.c.variant))}
    clicked = (
        select(RECIPIENTS.c.variant, func.count(distinct(LinkClick.id)))
        .join(LinkClick, LinkClick.enrollment_id == RECIPIENTS.c.enrollment_id)
        .where(
            RECIPIENTS.c.broadcast_id == broadcast.id,
            RECIPIENTS.c.status == RecipientStatus.SENT,
            LinkClick.lesson == lesson_key(broadcast.id),
            LinkClick.counted.is_(True),
            LinkClick.link_index >= 0,
        )
        .group_by(RECIPIENTS.c.variant)
    )
    clicks = {v: int(n) for v, n in session.execute(clicked)}
    b = broadcast.audience.get("variants", {}).get("b", {})
    subjects = {"a": broadcast.subject, "b": b.get("subject", broadcast.subject)}
    a_arm, b_arm = (
        ArmClicks(v, subjects[v], int(readers.get(v, 0)), int(clicks.get(v, 0))) for v in "ab"
    )
    return a_arm, b_arm


def winner_of(a: ArmClicks, b: ArmClicks) -> str:
    """More clicks per reader sent wins; a on a tie (the broadcast as written)."""
    return "b" if b.clicks * a.readers > a.clicks * b.readers else "a"


def decide_due(session: Session, now: datetime) -> list[tuple[int, str]]:
    """Give every test whose first held copy is due now its winner; commits. Returns the
    (broadcast id, winner) decided. A second worker finds no held row left and decides
    nothing."""
    due = (
        select(RECIPIENTS.c.broadcast_id)
        .distinct()
        .where(
            RECIPIENTS.c.variant == HELD,
            RECIPIENTS.c.status == RecipientStatus.QUEUED,
            RECIPIENTS.c.due_at <= now,
        )
    )
    decided = []
    for broadcast_id in list(session.scalars(due)):
        broadcast = session.get(Broadcast, broadcast_id)
        if broadcast is None:
            continue
        winner = winner_of(*arms(session, broadcast))
        given = session.execute(
            update(RECIPIENTS)
            .where(RECIPIENTS.c.broadcast_id == broadcast_id, RECIPIENTS.c.variant == HELD)
            .values(variant=winner)
        )
        if getattr(given, "rowcount", 0):
            decision = {"winner": winner, "at": now.isoformat()}
            broadcast.audience = {**broadcast.audience, "decided": decision}
            decided.append((broadcast_id, winner))
    session.commit()
    return decided


def figures(session: Session, broadcast: Broadcast) -> SplitFigures | None:
    """What the broadcast's page shows of its test, or None without one."""
    share = share_of(broadcast.audience)
    if not share:
        return None
    from_test = broadcast.audience.get("decided") or {}
    held = session.scalar(
        select(func.count()).where(
            RECIPIENTS.c.broadcast_id == broadcast.id, RECIPIENTS.c.variant == HELD
        )
    )
    return SplitFigures(
        share,
        decide_at(broadcast).isoformat(),
        arms(session, broadcast),
        int(held or 0),
        from_test.get("winner"),
        from_test.get("at"),
    )


def describe(test: SplitFigures | None) -> dict[str, Any] | None:
    """The test's figures as the API's report gives them."""
    if test is None:
        return None
    return {
        "test_share": test.share,
        "decide_at": test.decide_at,
        "variants": {
            arm.name: {"subject": arm.subject, "readers": arm.readers, "clicks": arm.clicks}
            for arm in test.arms
        },
        "held": test.held,
        "winner": test.winner,
        "decided_at": test.decided_at,
    }
