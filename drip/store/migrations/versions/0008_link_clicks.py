"""clicks on tracked links and opens

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('link_clicks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.String(length=100), nullable=False),
    sa.Column('lesson', sa.String(length=100), nullable=False),
    sa.Column('link_index', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('counted', sa.Boolean(), nullable=False),
    sa.Column('user_agent', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('link_clicks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_link_clicks_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index('ix_link_clicks_lesson', ['sequence', 'lesson', 'link_index'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('link_clicks', schema=None) as batch_op:
        batch_op.drop_index('ix_link_clicks_lesson')
        batch_op.drop_index(batch_op.f('ix_link_clicks_enrollment_id'))
    op.drop_table('link_clicks')
