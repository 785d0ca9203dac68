"""operator roles and the admin's audit log

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every operator so far could do everything: they stay owners.
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=20), server_default='owner', nullable=False))
    op.create_table('audit_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('operator_email', sa.String(length=320), nullable=False),
    sa.Column('action', sa.String(length=200), nullable=False),
    sa.Column('target', sa.Text(), nullable=False),
    sa.Column('before', sa.Text(), nullable=True),
    sa.Column('after', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entries_operator_id', ['operator_email', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entries_operator_id')
    op.drop_table('audit_entries')
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.drop_column('role')
