"""bounce events, the sending pause and used webhook tokens (drip.deliverability.bounces)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 22:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bounce_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('received_at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('provider', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=True),
    sa.Column('enrollment_id', sa.Integer(), nullable=True),
    sa.Column('delivery_id', sa.Integer(), nullable=True),
    sa.Column('matched_by', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=40), nullable=False),
    sa.Column('diagnostic', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.create_index('ix_bounce_events_delivery', ['delivery_id'], unique=False)
        batch_op.create_index('ix_bounce_events_subscriber', ['subscriber_id', 'received_at'],
                              unique=False)
    op.create_table('sending_pauses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('paused_at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('resumed_at', drip.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resumed_by', sa.String(length=320), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('webhook_tokens',
    sa.Column('provider', sa.String(length=40), nullable=False),
    sa.Column('token', sa.String(length=255), nullable=False),
    sa.Column('seen_at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'token')
    )


def downgrade() -> None:
    op.drop_table('webhook_tokens')
    op.drop_table('sending_pauses')
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.drop_index('ix_bounce_events_subscriber')
        batch_op.drop_index('ix_bounce_events_delivery')
    op.drop_table('bounce_events')
