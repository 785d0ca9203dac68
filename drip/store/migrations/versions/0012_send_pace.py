"""the relay's pace, shared by every worker

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 23:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('send_pace',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('next_slot', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('send_pace')
