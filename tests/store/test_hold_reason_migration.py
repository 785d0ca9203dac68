"""Migration 0022: the readers held for their course's content, known until then by the words
of their `last_error`, are marked by `hold_reason` once, and no one else is."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from alembic import command
from sqlalchemy import Table, insert, select

from drip.store.db import alembic_config, make_engine
from drip.store.models import HOLD_CONTENT, Enrollment, EnrollmentStatus, Subscriber

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
E = cast(Table, Enrollment.__table__)
S = cast(Table, Subscriber.__table__)
REASONS = {
    "held-problems": "sequence 'tiny' has problems: the admin's Sequences page says what to fix",
    "held-gone": "sequence 'tiny' does not exist in /srv/sequences",
    "held-render": "tiny/welcome cannot be rendered (run `drip check`): undefined 'x'",
    "held-lesson": "lesson 'two', next for this reader, is no longer in /srv/sequences/tiny: ...",
    "refused": "451 4.3.0 mailbox busy, try again later",
    "clear": None,
}


def test_0022_marks_the_readers_held_for_the_content_by_their_reason(tmp_path: Path) -> None:
    (tmp_path / "drip.sqlite3").touch()
    engine = make_engine(f"sqlite:///{tmp_path / 'drip.sqlite3'}")
    command.upgrade(alembic_config(engine), "0021")
    with engine.begin() as conn:
        for name, reason in REASONS.items():
            person = conn.execute(
                insert(S)
                .values(
                    email=f"{name}@example.org",
                    first_name="",
                    timezone="UTC",
                    attributes={},
                    created_at=NOW,
                )
                .returning(S.c.id)
            ).scalar_one()
            conn.execute(
                insert(E).values(
                    subscriber_id=person,
                    sequence="tiny",
                    status=EnrollmentStatus.ACTIVE,
                    attempts=0,
                    created_at=NOW,
                    last_error=reason,
                )
            )

    command.upgrade(alembic_config(engine), "head")

    with engine.connect() as conn:
        rows = conn.execute(select(S.c.email, E.c.hold_reason).join(E, E.c.subscriber_id == S.c.id))
        held = {row.email: row.hold_reason for row in rows}
    engine.dispose()
    assert held == {
        f"{name}@example.org": HOLD_CONTENT if name.startswith("held") else None for name in REASONS
    }
