"""Lead-magnet rebuilds as background jobs

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('magnet_builds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.String(length=100), nullable=False),
    sa.Column('requested_by', sa.String(length=320), nullable=False),
    sa.Column('requested_at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('steps_done', sa.Integer(), nullable=False),
    sa.Column('steps_total', sa.Integer(), nullable=False),
    sa.Column('step', sa.String(length=200), nullable=False),
    sa.Column('started_at', drip.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', drip.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('dropped', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('active', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('active')
    )
    op.create_index('ix_magnet_builds_sequence_id', 'magnet_builds', ['sequence', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_magnet_builds_sequence_id', table_name='magnet_builds')
    op.drop_table('magnet_builds')
