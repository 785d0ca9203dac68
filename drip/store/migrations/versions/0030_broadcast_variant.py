"""each broadcast copy records the variant its reader got (a broadcast's test)

`broadcast_recipients.variant` is a or b for a reader in a broadcast's test share, `held`
for one waiting for the winner (then the winner), empty for a broadcast without
`variants:` (drip.dispatch.broadcast_variants). A plain ADD COLUMN on both databases:
rebuilding the table (a batch operation on SQLite) would drop the tallies' triggers on it.

Revision ID: 0030
Revises: 0028
Create Date: 2026-12-06 18:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0030'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('broadcast_recipients', sa.Column('variant', sa.String(length=8), nullable=True))


def downgrade() -> None:
    op.drop_column('broadcast_recipients', 'variant')
