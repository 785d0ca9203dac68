"""readers' replies

One row per reply that reached drip (the reply mailbox or a provider's inbound webhook):
matched to its reader and message by the signed reply address, or kept unmatched.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('received_at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('matched', sa.Boolean(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=True),
    sa.Column('enrollment_id', sa.Integer(), nullable=True),
    sa.Column('sequence', sa.String(length=100), nullable=True),
    sa.Column('lesson', sa.String(length=100), nullable=True),
    sa.Column('holds', sa.Boolean(), nullable=False),
    sa.Column('done_at', drip.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_by', sa.String(length=320), nullable=True),
    sa.Column('forwarded_at', drip.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('replies', schema=None) as batch_op:
        batch_op.create_index('ix_replies_matched_id', ['matched', 'id'], unique=False)
        batch_op.create_index('ix_replies_sequence_lesson', ['sequence', 'lesson'], unique=False)
        batch_op.create_index('ix_replies_subscriber_id', ['subscriber_id'], unique=False)
        batch_op.create_index('ix_replies_enrollment_id', ['enrollment_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('replies', schema=None) as batch_op:
        batch_op.drop_index('ix_replies_enrollment_id')
        batch_op.drop_index('ix_replies_subscriber_id')
        batch_op.drop_index('ix_replies_sequence_lesson')
        batch_op.drop_index('ix_replies_matched_id')
    op.drop_table('replies')
