"""enrollments remember when their on_complete was carried out

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chained_at', drip.store.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_enrollments_unchained', ['status', 'chained_at', 'completed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollments_unchained')
        batch_op.drop_column('chained_at')
