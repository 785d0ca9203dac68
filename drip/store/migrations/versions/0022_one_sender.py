"""one sender for every kind of message: fresh links and offers are leased rows

`link_requests` holds every one-off message to a reader, a fresh download link
(`kind = 'magnet-link'`) or a course offer (`kind = 'offer'`): `due_at` (the first opening
of the reader's send window for an offer; at once for a fresh link) doubles as the claim's
lease, with `lease_owner`, as for enrollments and broadcast copies. `enrollments.hold_reason`
says why a reader is held (`content` when their course cannot be read), where the pass
used to match words in `last_error`.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models

HELD_FOR_CONTENT = (
    "sequence % has problems%",
    "sequence % does not exist in %",
    "%/% cannot be rendered%",
    "lesson %, next for this reader, is no longer in %",
)

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('link_requests', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('due_at', drip.store.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=100), nullable=True))
    op.execute("UPDATE link_requests SET due_at = requested_at")
    with op.batch_alter_table('link_requests', schema=None) as batch_op:
        batch_op.alter_column(
            'due_at', existing_type=drip.store.models.UTCDateTime(timezone=True), nullable=False
        )
        batch_op.create_index('ix_link_requests_due_at', ['due_at'], unique=False)
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hold_reason', sa.String(length=20), nullable=True))
    # The readers held for their course's content until now were known by their reason's
    # words; from here on by the column.
    held = " OR ".join(f"last_error LIKE :p{n}" for n in range(len(HELD_FOR_CONTENT)))
    op.execute(
        sa.text(f"UPDATE enrollments SET hold_reason = 'content' WHERE {held}").bindparams(
            **{f"p{n}": pattern for n, pattern in enumerate(HELD_FOR_CONTENT)}
        )
    )


def downgrade() -> None:
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_column('hold_reason')
    with op.batch_alter_table('link_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_link_requests_due_at')
        batch_op.drop_column('lease_owner')
        batch_op.drop_column('due_at')
