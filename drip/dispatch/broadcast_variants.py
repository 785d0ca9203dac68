"""A broadcast's test of a second subject: a share of the audience first, the winner to the
rest after a set time, judged on clicks.

    variants:
      b:
        subject: "The interview day, hour by hour"
    test_share: 20%      # of the audience, split between a and b (default 20%)
    decide_after: 4h     # after the broadcast's time, the rest get the winner (default 4h)

The three keys live with the audience (`Broadcast.audience`), so a broadcast keeps them from
its file, the admin's form or the API alike and `as_file` writes them back. When it is
scheduled, the test share (a hash of the reader and the broadcast, so the same every time)
is split between a and b and due at once, in each reader's window; the rest are `held`,
due no sooner than the decision time, when drip.dispatch.broadcast_winner gives them the
winner. Each recipient row records the variant its reader got.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import BigInteger, Table, case, literal, update
from sqlalchemy.orm import Session

from drip.content.sequences import Problem
from drip.store.models import Broadcast, BroadcastRecipient

TEST_KEYS = frozenset({"variants", "test_share", "decide_after"})
VARIANT_KEYS = ("subject", "preheader")  # what b may change in a broadcast
HELD = "held"  # a recipient waiting for the winner
SHARE = 20  # percent, `test_share:`'s default
DECIDE_AFTER = timedelta(hours=4)  # `decide_after:`'s default
LONGEST = timedelta(days=14)  # a longer wait is a typo, and keeps the rest waiting
RECIPIENTS = cast(Table, BroadcastRecipient.__table__)
UNITS = {"m": 60, "h": 3600, "d": 86400}
PRIME = 1_000_003  # the split's hash modulus


def read_test(
    meta: dict[str, Any], path: Path, known: frozenset[str]
) -> tuple[dict[str, Any], list[Problem]]:
    """The front matter's keys checked against `known` and the test's keys; the test as
    stored with the audience ({} without `variants:`), and every problem at once."""
    allowed = ", ".join(sorted(known | TEST_KEYS))
    problems = [
        Problem(path, 2, f"unknown key {key!r} (allowed: {allowed})")
        for key in sorted(set(meta) - known - TEST_KEYS)
    ]
    if not meta.get("variants"):
        if "test_share" in meta or "decide_after" in meta:
            problems.append(Problem(path, 2, "test_share and decide_after need variants: b"))
        return {}, problems
    variants = meta["variants"]
    b = variants.get("b") if isinstance(variants, dict) else None
    if not isinstance(variants, dict) or set(variants) != {"b"} or not isinstance(b, dict):
        problems.append(Problem(path, 2, "variants: a broadcast tries one, b, with its subject"))
        return {}, problems
    changes = {str(k): str(v).strip() for k, v in b.items() if str(v or "").strip()}
    if not changes or set(changes) - set(VARIANT_KEYS):
        problems.append(Problem(path, 2, "variants: b changes the subject or the preheader"))
    share = _share(meta.get("test_share", f"{SHARE}%"), path, problems)
    after = _duration(meta.get("decide_after", "4h"), path, problems)
    test = {"variants": {"b": changes}, "test_share": f"{share}%", "decide_after": after}
    return test, problems


def _share(raw: Any, path: Path, problems: list[Problem]) -> int:
    found = re.fullmatch(r"\s*(\d{1,3})\s*%?\s*", str(raw))
    if found is None or not 2 <= int(found[1]) <= 100:
        problems.append(Problem(path, 2, f"test_share: {raw!r} is not a share such as 20%"))
        return SHARE
    return int(found[1])


def _duration(raw: Any, path: Path, problems: list[Problem]) -> str:
    found = re.fullmatch(r"\s*(\d{1,4})\s*([mhd])\s*", str(raw))
    seconds = int(found[1]) * UNITS[found[2]] if found else 0
    if not 0 < seconds <= LONGEST.total_seconds():
        problems.append(
            Problem(path, 2, f"decide_after: {raw!r} is not a wait such as 4h, 90m or 1d (≤ 14d)")
        )
        return "4h"
    return f"{found[1]}{found[2]}" if found else "4h"


def share_of(audience: dict[str, Any]) -> int:
    """The test share in percent, or 0 for a broadcast without a test."""
    return int(str(audience.get("test_share", f"{SHARE}%")).rstrip("%")) * bool(
        audience.get("variants")
    )


def decide_at(broadcast: Broadcast) -> datetime:
    """When the held readers get the winner: `decide_after` after the broadcast's time."""
    raw = str(broadcast.audience.get("decide_after", "4h"))
    return broadcast.send_at + timedelta(seconds=int(raw[:-1]) * UNITS[raw[-1]])


def split_recipients(session: Session, broadcast: Broadcast) -> None:
    """Give the test share a or b and hold the rest until the decision (no-op without a
    test): by a hash of the reader and the broadcast, in the database, in two UPDATEs."""
    share = share_of(broadcast.audience)
    if not share:
        return
    # x = (reader * 48271 + broadcast's offset) mod P, then x * x mod P (< 2**40): integer
    # arithmetic both databases do alike; squaring scrambles consecutive readers' ids.
    offset = literal((broadcast.id * 69621 + 12345) % PRIME, BigInteger())
    x = (RECIPIENTS.c.subscriber_id * literal(48271, BigInteger()) + offset) % PRIME
    mixed = x * x % PRIME
    mine = RECIPIENTS.c.broadcast_id == broadcast.id
    session.execute(
        update(RECIPIENTS)
        .where(mine, mixed % 100 < share)
        .values(variant=case((mixed % 200 < 100, "a"), else_="b"))
    )
    decision = literal(decide_at(broadcast), RECIPIENTS.c.due_at.type)
    session.execute(
        update(RECIPIENTS)
        .where(mine, RECIPIENTS.c.variant.is_(None))
        .values(
            variant=HELD,
            due_at=case((RECIPIENTS.c.due_at < decision, decision), else_=RECIPIENTS.c.due_at),
        )
    )


def as_sent(broadcast: Broadcast, variant: str | None) -> Broadcast:
    """The broadcast as a reader of `variant` gets it: b's subject and preheader in place
    of the broadcast's (a transient copy, never added to the session)."""
    changes = broadcast.audience.get("variants", {}).get(variant or "a")
    if not changes:
        return broadcast
    return Broadcast(
        id=broadcast.id,
        name=broadcast.name,
        subject=changes.get("subject", broadcast.subject),
        preheader=changes.get("preheader", broadcast.preheader),
        body=broadcast.body,
        audience=broadcast.audience,
        send_at=broadcast.send_at,
        status=broadcast.status,
        created_at=broadcast.created_at,
    )
