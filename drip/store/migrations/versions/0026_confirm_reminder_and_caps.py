"""the confirmation's one reminder is marked on its enrollment; a reader's broadcast copies
indexed by the moment they went

`enrollments.confirm_reminded_at`: when the one reminder of an unconfirmed sign-up was queued
(so no second is ever sent). `ix_broadcast_recipients_subscriber_sent`:
the caps count a reader's copies sent this week (drip.dispatch.caps).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'confirm_reminded_at',
                drip.store.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
    with op.batch_alter_table('broadcast_recipients', schema=None) as batch_op:
        batch_op.create_index(
            'ix_broadcast_recipients_subscriber_sent', ['subscriber_id', 'sent_at'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('broadcast_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_broadcast_recipients_subscriber_sent')
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_column('confirm_reminded_at')
