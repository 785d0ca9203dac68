"""operator sessions as rows

A login session was the operator's id and a version in the signed cookie, so whoever held
the secret key could mint an owner's cookie. Each session is now a row holding the SHA-256
of a random id that only the browser's cookie carries; the admin looks it up on every
request, and deleting it (log out, revoke, a new role or password) ends that session. The
epoch that used to end every session at once goes. Sessions from before are not carried
over: everyone logs in again once.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('operator_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('user_agent', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('operator_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_operator_sessions_operator_id', ['operator_id'], unique=False)
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')


def downgrade() -> None:
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('operator_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_operator_sessions_operator_id')
    op.drop_table('operator_sessions')
