"""bounce events by the time they came, for the dashboard's per-day rates

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 00:10:00
"""

from __future__ import annotations

from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.create_index('ix_bounce_events_received', ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.drop_index('ix_bounce_events_received')
