"""Before the lessons' hand-offs: each planned message's template built (a lesson that
cannot render holds its readers), and each delivery written as `sending` ahead of its
hand-off, under a Message-ID from the one function every kind uses
(drip.mail.message_ids.message_id_for); a retry of a delivery reuses the id on its row."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Row,
    Table,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from drip.content.magnets import magnet_pdf, page_size_for
from drip.core.config import Settings
from drip.dispatch.plan import HOLD, Plan, Send, Settle, Verdict
from drip.dispatch.record import (
    delivery_leased,
    keep_unknown,
)
from drip.mail.message_ids import message_id_for
from drip.mail.render import MessageTemplate, Renderer
from drip.store.models import (
    OUTCOME_UNKNOWN,
    Delivery,
    DeliveryStatus,
    Enrollment,
    Event,
    Subscriber,
)

log = logging.getLogger(__name__)
E = cast(Table, Enrollment.__table__)
D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
EVENTS = cast(Table, Event.__table__)


@dataclass(frozen=True)
class Ready:
    """A planned message with its template built and its delivery row written ahead."""

    send: Send
    template: MessageTemplate
    delivery_id: int | None  # None for the confirmation email, which has no delivery row
    message_id: str  # this send's: a retry of it keeps it, a new send gets another
    attachments: tuple[tuple[str, bytes], ...] = ()


class WriteAhead:
    """Builds and writes ahead one worker's batches of lessons and confirmations."""

    def __init__(self, settings: Settings, renderer: Renderer, worker_id: str) -> None:
        self.settings = settings
        self.renderer = renderer
        self.worker_id = worker_id

    def renderable(self, plan: Plan, now: datetime) -> Plan:
        """A message its sequence cannot render holds its reader, with the reason: the
        failure stays with that sequence, and every other reader of the batch is sent."""
        if not isinstance(plan, Send):
            return plan
        try:
            self.template(plan)
        except Exception as error:  # whatever the author's files did: hold, never crash
            log.exception(
                "%s/%s cannot be rendered; its readers are held",
                plan.sequence.slug,
                plan.lesson_key,
            )
            return Settle(
                plan.claimed,
                Verdict.HELD,
                plan.lesson_key,
                f"{plan.sequence.slug}/{plan.lesson_key} cannot be rendered "
                f"(run `drip check`): {' '.join(str(error).split())}"[:1000],
                hold_until=now + HOLD,
            )
        return plan

    def build(
        self, conn: Connection, sends: list[Send], now: datetime
    ) -> list[tuple[Send, MessageTemplate, tuple[tuple[str, bytes], ...]]]:
        """Each message's template and attachments, built before anything is written."""
        built = []
        for s in sends:
            pdf = self._lead_magnet(conn, s, now) if s.attach_magnet else ()
            # A welcome that carries the PDF says it is attached.
            template = (
                self.renderer.lesson(s.sequence, s.lesson, attached=True)
                if pdf and s.lesson is not None
                else self.template(s)
            )
            built.append((s, template, pdf))
        return built

    def prepare(
        self,
        conn: Connection,
        built: list[tuple[Send, MessageTemplate, tuple[tuple[str, bytes], ...]]],
        now: datetime,
    ) -> list[Ready]:
        """Record each lesson's delivery as `sending` before the hand-off (the caller commits
        them all at once): new rows in one insert ordered by lesson, as the tallies are."""
        new = sorted(
            (
                (s, t)
                for s, t, _ in built
                if s.lesson is not None and s.lesson_key not in s.claimed.earlier
            ),
            key=lambda st: (st[0].claimed.sequence, st[0].lesson_key, st[0].claimed.enrollment_id),
        )
        ids: dict[int, int] = {}
        mids: dict[int, str] = {}
        if new:
            values: list[dict[str, Any]] = [
                {
                    "enrollment_id": s.claimed.enrollment_id,
                    "lesson": s.lesson_key,
                    "lesson_version": t.version,
                    "variant": s.lesson.variant or None if s.lesson else None,  # experiments
                    "message_id": self._new_id(s, t),
                }
                for s, t in new
            ]
            alike = {
                "status": DeliveryStatus.SENDING,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            ids = {row.enrollment_id: row.id for row in _insert(conn, values, alike)}
            mids = {value["enrollment_id"]: value["message_id"] for value in values}
        for s, _, _ in built:
            if s.lesson is not None and s.lesson_key in s.claimed.earlier:
                delivery_id, previous, stored = s.claimed.earlier[s.lesson_key]
                ids[s.claimed.enrollment_id], mids[s.claimed.enrollment_id] = delivery_id, stored
                self._again(conn, delivery_id, previous, now)
        mids.update(self._confirmation_ids(conn, [(s, t) for s, t, _ in built if s.lesson is None]))
        return [
            Ready(s, t, ids.get(s.claimed.enrollment_id), mids[s.claimed.enrollment_id], pdf)
            for s, t, pdf in built
        ]

    def _again(
        self, conn: Connection, delivery_id: int, previous: DeliveryStatus, now: datetime
    ) -> None:
        """An earlier delivery of the lesson goes out again; one left `sending` had an
        unknown outcome (its worker stopped before recording it), which its note keeps."""
        values: dict[str, Any] = {"status": DeliveryStatus.SENDING, "updated_at": now}
        if previous == DeliveryStatus.SENDING:
            values["last_error"] = keep_unknown(
                f"{OUTCOME_UNKNOWN}: the previous attempt's worker stopped before recording "
                "its outcome; sent again with the same Message-ID"
            )
        conn.execute(
            update(D).where(D.c.id == delivery_id, delivery_leased(self.worker_id)).values(**values)
        )

    def _new_id(self, send: Send, template: MessageTemplate) -> str:
        """A fresh signed Message-ID for this send, by the one function every kind uses."""
        return message_id_for(
            self.settings.secret_key,
            send.claimed.enrollment_id,
            send.lesson_key,
            template.sender,
            self.renderer.domain,
        )

    def _confirmation_ids(
        self, conn: Connection, confirmations: list[tuple[Send, MessageTemplate]]
    ) -> dict[int, str]:
        """Each confirmation email's id, by enrollment, kept on its enrollment until it is
        sent: a retry of one that failed (or whose outcome a dying worker did not record)
        reuses it, and a fresh one asked for after it went out gets a new one (cleared when
        sent). The new ones are written in one statement for the batch."""
        mids = {
            s.claimed.enrollment_id: s.claimed.pending_message_id or self._new_id(s, t)
            for s, t in confirmations
        }
        new = [
            {"enrollment": s.claimed.enrollment_id, "mid": mids[s.claimed.enrollment_id]}
            for s, _ in confirmations
            if not s.claimed.pending_message_id
        ]
        if new:
            conn.execute(
                update(E)
                .where(E.c.id == bindparam("enrollment"))
                .values(pending_message_id=bindparam("mid")),
                new,
            )
        return mids

    def template(self, send: Send) -> MessageTemplate:
        if send.lesson is not None:
            return self.renderer.lesson(send.sequence, send.lesson)
        return self.renderer.confirmation(send.sequence)

    def _lead_magnet(
        self,
        conn: Connection,
        send: Send,
        now: datetime,
    ) -> tuple[tuple[str, bytes], ...]:
        """The reader's PDF to attach to the welcome lesson (`attach: true`). The lesson
        carries the download link too, so a PDF that cannot be typeset does not hold the
        lesson back: it goes without the attachment, and the log says why."""
        sequence = send.sequence
        attributes = conn.scalar(
            select(S.c.attributes).where(S.c.id == send.claimed.reader.subscriber_id)
        )
        try:
            pdf = magnet_pdf(
                self.settings,
                sequence,
                dict(attributes or {}),
                page_size=page_size_for(send.claimed.timezone),
                today=now.date(),
            )
        except Exception:
            log.exception(
                "lead magnet of %s not attached for enrollment %s (the lesson's "
                "download link still works)",
                sequence.slug,
                send.claimed.enrollment_id,
            )
            return ()
        return ((f"{sequence.slug}.pdf", pdf),)


def _insert(
    conn: Connection, values: list[dict[str, Any]], alike: dict[str, Any]
) -> Sequence[Row[Any]]:
    """The batch's new delivery rows, in their order, with the columns in `alike` the same
    for all of them; each row's (id, enrollment_id). On PostgreSQL one array per column
    that differs, unnested in step, and the others as single values: the statement's text
    is the same for any batch, so psycopg keeps it converted and prepared, where a
    multi-row VALUES of 200 rows (1,800 parameters) is converted anew each time; and the
    arrays, which psycopg writes out one element at a time, are only the columns that
    differ."""
    if conn.dialect.name != "postgresql":
        return conn.execute(
            insert(D).returning(D.c.id, D.c.enrollment_id, sort_by_parameter_order=True),
            [value | alike for value in values],
        ).all()
    names = list(values[0])
    columns = [
        func.unnest(literal([value[name] for value in values], ARRAY(D.c[name].type)))
        for name in names
    ]
    same = [literal(value, D.c[name].type) for name, value in alike.items()]
    rows = (
        insert(D)
        .from_select([*names, *alike], select(*columns, *same))
        .returning(D.c.id, D.c.enrollment_id)
    )
    return conn.execute(rows).all()
