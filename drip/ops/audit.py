"""The audit log: who did what in the admin, and for content, what it was before and after.

Plain functions of a session, like the rest of the domain code; the admin writes an entry
for every change an operator makes (drip.web.admin.access) and owners read it at /admin/audit.
Entries name the operator by address, so the history outlives the operator's account.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drip.store.models import AuditEntry
from drip.store.queries import PAGE, Cursor, Page, keyset

MAX_TARGET = 2_000  # a target names things; a long form value is cut, not stored whole


def record(
    session: Session,
    operator_email: str,
    action: str,
    target: str,
    now: datetime,
    before: str | None = None,
    after: str | None = None,
) -> AuditEntry:
    """Add an entry; the caller commits it with the change it records."""
    entry = AuditEntry(
        at=now,
        operator_email=operator_email,
        action=action[:200],
        target=target[:MAX_TARGET],
        before=before,
        after=after,
    )
    session.add(entry)
    return entry


def entries_page(
    session: Session, cursor: Cursor, operator: str = "", size: int = PAGE
) -> Page[Any]:
    """A page of the log, rows of (AuditEntry,), newest first; with `operator`, only that
    operator's entries (a range of the (operator_email, id) index)."""
    statement = select(AuditEntry)
    if operator:
        statement = statement.where(AuditEntry.operator_email == operator.strip().lower())
    total = int(
        session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    )
    return keyset(
        session, statement, AuditEntry.id, lambda row: int(row[0].id), cursor, total, size
    )


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "added", "removed", "same" or "gap" (the hunk header between changes)
    text: str


def diff(before: str | None, after: str | None, context: int = 3) -> list[DiffLine]:
    """Line by line, what changed from `before` to `after`, with `context` lines around
    each change; an entry with neither has no diff."""
    if before is None and after is None:
        return []
    lines = list(
        difflib.unified_diff(
            (before or "").splitlines(), (after or "").splitlines(), lineterm="", n=context
        )
    )[2:]  # past the "---"/"+++" file headers
    kinds = {"+": "added", "-": "removed", " ": "same", "@": "gap"}
    return [DiffLine(kinds[line[0]], line if line[0] == "@" else line[1:]) for line in lines]
