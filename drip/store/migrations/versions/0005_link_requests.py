"""fresh links queued for the worker; operator session epochs (logout ends the session)

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01 22:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models


revision = '0005'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('link_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('requested_at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('link_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_link_requests_enrollment_id'), ['enrollment_id'], unique=False)
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')
    with op.batch_alter_table('link_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_requests_enrollment_id'))
    op.drop_table('link_requests')
