"""where the engagement sweep started: (engagement_sweeps.started_id)

Each pass's sweep reads the timeline's actions after its cursor, and reads again some of
those behind it: on PostgreSQL a transaction that took its event's id before a sweep read
the last one may commit after that sweep (drip.audience.engagement, `LATE`). What came
before the first sweep is never read (a reader is not judged on what they did before the
feature): `started_id` is the cursor's first value, and nothing at or below it is read. An
existing cursor starts where it stands.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-08 01:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        'engagement_sweeps',
        sa.Column('started_id', sa.BigInteger(), nullable=False, server_default='0'),
    )
    op.execute('UPDATE engagement_sweeps SET started_id = event_id')


def downgrade() -> None:
    with op.batch_alter_table('engagement_sweeps', schema=None) as batch_op:
        batch_op.drop_column('started_id')
