"""each delivery records the variant of its lesson the reader got (experiments)

`deliveries.variant` is a, b or c for a lesson with variants (drip.content.variants), empty
for every other lesson. A plain ADD COLUMN on both databases: rebuilding the table (a batch
operation on SQLite) would drop the tallies' triggers on it.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 17:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('deliveries', sa.Column('variant', sa.String(length=8), nullable=True))


def downgrade() -> None:
    op.drop_column('deliveries', 'variant')
