"""What the one sender asks of each kind of message beside the lessons (fresh links, offers,
broadcast copies): the kinds differ only in which rows are due, what they render and who
is still wanted; everything else (pace, write-ahead, hand-off, rest, retry, events) is
the sender's (drip.dispatch.sender).

A producer's rows share one shape: `due_at` doubling as the claim's lease with
`lease_owner`, `attempts`, `last_error`, and the `message_id` written before the first
hand-off. `claim` takes a batch of them for one worker (`FOR UPDATE SKIP LOCKED` on
PostgreSQL; SQLite dispatches one process at a time), or, for the dry run, only reads them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase

from drip.content.schedule import into_window
from drip.content.sequences import SendWindow
from drip.dispatch.outcome import Kind, Outcome, OutcomeStatus
from drip.mail.handoff import Unsendable
from drip.mail.pace import backoff
from drip.mail.render import MessageTemplate
from drip.mail.transports import SendError
from drip.store.models import EventKind
from drip.store.queries import among, first_due

HOLD = timedelta(minutes=15)  # how long a message waits when its course cannot be read
Window = tuple[SendWindow, ZoneInfo]


@dataclass(frozen=True)
class Lease:
    """Who claims, and until when: a worker that dies leaves its rows due again then."""

    worker: str
    until: datetime


@dataclass
class Item:
    """One claimed message: its row, its reader, and where it must fall."""

    row_id: int
    enrollment_id: int
    subscriber_id: int
    email: str
    first_name: str
    sequence: str  # the course it is reported under
    label: str  # its Message-ID's label and the report's lesson name
    attempts: int
    message_id: str | None
    window: Window | None  # the reader's send window in their zone; None: any hour
    context: Any = None  # the producer's own (its courses, its broadcast)
    template: MessageTemplate | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Settled:
    """What becomes of an item's row: `due_at` for one tried again (or put back)."""

    status: OutcomeStatus
    attempts: int
    error: str | None = None
    due_at: datetime | None = None
    at: datetime | None = None  # when it was handed over


class Producer(Protocol):
    """One kind of message, as the sender asks for it."""

    kind: Kind
    sent_event: EventKind | None  # on the reader's timeline when it is handed over
    failed_event: EventKind  # when it fails for good
    capped: bool  # counted against the reader's daily and weekly caps (drip.dispatch.caps)

    def due(self, session: Session, now: datetime, limit: int, lease: Lease | None) -> list[Item]:
        """The items due at `now`, oldest first, leased (None: only read, the dry run)."""
        ...

    def render(self, session: Session, item: Item) -> str | None:
        """Fill in `item.template` (and `extra`); why not, when its course cannot be read."""
        ...

    def status_read(self, item: Item) -> tuple[Select[Any], dict[str, Any]]:
        """The read right before the hand-off (the same object for items alike, so it is
        compiled once: drip.dispatch.hot_path; its columns labelled, its first NULL when
        there is no row) and its parameters (none named p_* or e_*)."""
        ...

    def verdict(self, item: Item, row: Any) -> str:
        """From the status read's row (None: no row): why the reader must not get it now,
        or ""."""
        ...

    def sent(self) -> UpdateBase:
        """The row marked sent (or deleted) while the lease is the worker's, always the same
        object: parameters among p_row, p_me, p_attempts, p_at."""
        ...

    def write_ahead(self, session: Session, items: list[Item], worker: str) -> None:
        """Store each item's `message_id` on its row before the first hand-off (the batch
        in one statement)."""
        ...

    def settle(self, session: Session, item: Item, settled: Settled, worker: str) -> bool:
        """Record the outcome on the row, only while `worker` holds it (False if not)."""
        ...

    def finish(self, session: Session) -> None:
        """After a run: whatever the kind closes (a broadcast with nobody left is done)."""
        ...


class Next(enum.Enum):
    """The one retry rule: what follows a hand-off that failed, for every kind."""

    REST = "rest"  # the relay asked drip to slow down: everything waits, no attempt used
    RELEASE = "release"  # drip's own side failed (the outbox's disk): no attempt used
    FAIL = "fail"  # this message cannot be built or addressed for this reader
    SUPPRESS = "suppress"  # a permanent refusal: the address is suppressed
    GIVE_UP = "give-up"  # transient, but DRIP_MAX_ATTEMPTS are used up
    RETRY = "retry"  # transient: again after `backoff`, in the reader's window


def why_not(session: Session, producer: Producer, item: Item) -> str:
    """The producer's status read, run through the session (the dry run's): why the
    reader must not get `item` now, or ""."""
    statement, params = producer.status_read(item)
    return producer.verdict(item, session.connection().execute(statement, params).first())


def next_step(error: SendError | Unsendable, attempts: int, max_attempts: int) -> Next:
    """`attempts`: the tries before this one."""
    if isinstance(error, Unsendable):
        return Next.FAIL
    if error.throttled:
        return Next.REST
    if not error.charged:
        return Next.RELEASE
    if not error.transient:
        return Next.SUPPRESS
    return Next.GIVE_UP if attempts + 1 >= max_attempts else Next.RETRY


def later(now: datetime, wait: timedelta, window: Window | None) -> datetime:
    """`wait` from now, moved into the reader's window when the message keeps to one."""
    return now + wait if window is None else into_window(now + wait, *window)


def after_failure(
    error: SendError | Unsendable, item: Item, now: datetime, max_attempts: int
) -> tuple[Next, Settled]:
    """The one retry rule applied to `item`: the next step and what its row becomes."""
    step = next_step(error, item.attempts, max_attempts)
    text = str(error)[:2000]
    if step in (Next.REST, Next.RELEASE):
        return step, Settled(
            OutcomeStatus.RETRYING, item.attempts, text, later(now, backoff(1), item.window)
        )
    tried = item.attempts + 1
    if step is Next.RETRY:
        at = later(now, backoff(tried), item.window)
        return step, Settled(OutcomeStatus.RETRYING, tried, text, at)
    if step is Next.SUPPRESS:
        return step, Settled(OutcomeStatus.SUPPRESSED, tried, text)
    reason = f"gave up after {tried} attempts: {text}" if step is Next.GIVE_UP else text
    return step, Settled(OutcomeStatus.FAILED, tried, reason)


def write_ahead_ids(session: Session, table: Table, items: list[Item], worker: str) -> None:
    """The batch's Message-IDs on `table`'s rows in one executemany, each only while the row
    is `worker`'s (a producer's `write_ahead`)."""
    session.execute(
        update(table)
        .where(table.c.id == bindparam("row"), table.c.lease_owner == worker)
        .values(message_id=bindparam("mid")),
        [{"row": item.row_id, "mid": item.message_id} for item in items],
    )


def claim(
    session: Session,
    table: Table,
    due: Sequence[ColumnElement[bool]],
    limit: int,
    lease: Lease | None,
    **values: Any,
) -> list[int]:
    """The ids of up to `limit` rows of `table` matching any of `due`, oldest first, leased
    to `lease.worker` until `lease.until` (with `values` written too) and committed; with no
    lease, every due row, read only. Each of `due` is one range an index reads in (due_at,
    id) order (drip.store.queries.first_due): a batch costs the same however many wait."""
    order = (table.c.due_at, table.c.id)
    if lease is None:
        return list(session.scalars(select(table.c.id).where(or_(*due)).order_by(*order)))
    postgres = session.get_bind().dialect.name == "postgresql"
    ids = list(session.scalars(first_due(table, due, order, limit, skip_locked=postgres)))
    if ids:
        session.execute(
            update(table)
            .where(among(session, table.c.id, ids))
            .values(lease_owner=lease.worker, due_at=lease.until, **values)
        )
    session.commit()
    return ids


def outcome_of(
    producer: Producer,
    item: Item,
    status: OutcomeStatus,
    detail: str = "",
    relay_down: bool = False,
    throttled: bool = False,
) -> Outcome:
    """What became of one item, for the pass's report."""
    return Outcome(
        item.enrollment_id,
        item.email,
        item.sequence,
        item.label,
        status,
        detail,
        relay_down,
        throttled,
        kind=producer.kind,
    )
