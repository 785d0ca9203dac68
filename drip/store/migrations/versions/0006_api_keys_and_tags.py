"""API keys for /api/v1 and tags on readers

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('scope', sa.String(length=10), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', drip.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', drip.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash'),
    sa.UniqueConstraint('name')
    )
    op.create_table('subscriber_tags',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=40), nullable=False),
    sa.Column('created_at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'tag')
    )
    with op.batch_alter_table('subscriber_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscriber_tags_tag'), ['tag'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('subscriber_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscriber_tags_tag'))
    op.drop_table('subscriber_tags')
    op.drop_table('api_keys')
