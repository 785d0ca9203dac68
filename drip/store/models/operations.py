"""What runs drip: operators, their roles, sessions and audit log, the per-sequence
switches, the workers' heartbeats and the shared rate limits."""

from __future__ import annotations

import enum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from drip.store.models.columns import Base, StrEnumType, intpk, utc, utc_or_none


class SequenceState(Base):
    """Operator switches per sequence; the sequence itself lives in files."""

    __tablename__ = "sequence_states"

    sequence: Mapped[str] = mapped_column(String(100), primary_key=True)
    paused: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[utc]


class Role(enum.StrEnum):
    """What an operator may do in the admin; each role may do everything the one below may
    (drip.web.admin.access). Lower-case member names: `@requires(Role.editor)` reads as a rule."""

    viewer = "viewer"  # reads every page, changes nothing
    editor = "editor"  # and edits content: lessons, sequences, magnets, broadcast drafts
    owner = "owner"  # and everything else: readers, sending, operators, the audit log

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[utc]
    last_login_at: Mapped[utc_or_none]
    # Operators from before roles had every power: they stay owners.
    role: Mapped[Role] = mapped_column(
        StrEnumType(Role, 20), default=Role.owner, server_default=Role.owner.value
    )


class OperatorSession(Base):
    """One logged-in browser (drip.ops.operator_sessions). The cookie carries a random id and
    the row only its SHA-256, so neither the secret key nor a copy of this table lets
    anyone make a cookie that opens the admin; deleting the row ends the session."""

    __tablename__ = "operator_sessions"

    id: Mapped[intpk]
    operator_id: Mapped[int] = mapped_column(
        ForeignKey("operators.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[utc]
    last_seen_at: Mapped[utc]
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")


class AuditEntry(Base):
    """One thing an operator did in the admin (drip.ops.audit). The operator is kept as their
    address, not a key: removing the operator keeps the history of what they did."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_operator_id", "operator_email", "id"),)

    id: Mapped[intpk]
    at: Mapped[utc]
    operator_email: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[str | None] = mapped_column(Text)  # content as it was, for a diff
    after: Mapped[str | None] = mapped_column(Text)


class WorkerHeartbeat(Base):
    """One row per worker process; /healthz and the admin read the newest pass from here."""

    __tablename__ = "worker_heartbeats"

    worker: Mapped[str] = mapped_column(String(100), primary_key=True)
    started_at: Mapped[utc]
    last_pass_at: Mapped[utc]
    last_pass_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_pass_failed: Mapped[int] = mapped_column(Integer, default=0)


class RateLimit(Base):
    """A fixed-window counter shared by every web worker (sign-ups, resends, logins)."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[utc]
    count: Mapped[int] = mapped_column(Integer, default=0)
