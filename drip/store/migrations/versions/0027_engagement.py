"""readers' engagement: engaged, quiet or gone, kept on the reader

`subscribers.engagement` is what the reader's actions say (clicks by a person, replies,
downloads, pace choices, tag links, goals; never opens), kept by the dispatch pass and by
the actions themselves so the readers list filters on an indexed column. `engaged_at` is
the last action, `repermission_at` when "Still want these?" went out unanswered.
`engagement_days` holds the share of each state per course per day (the dashboard's chart),
`engagement_sweeps` how far the pass has read the timeline. Every existing reader starts
engaged, their last action counted from now on (a reader is never called quiet for what
they did before the feature).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import drip.store.models


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('engagement', sa.String(length=10), server_default='engaged', nullable=False))
        batch_op.add_column(sa.Column('engaged_at', drip.store.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('repermission_at', drip.store.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_subscribers_engagement_id', ['engagement', 'id'], unique=False)
    # Existing readers' last action counts from now: none is called quiet for the past.
    op.execute(
        sa.text('UPDATE subscribers SET engaged_at = :now').bindparams(
            sa.bindparam('now', datetime.now(UTC), type_=drip.store.models.UTCDateTime())
        )
    )
    op.create_table('engagement_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('sequence', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('readers', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'sequence', 'state')
    )
    op.create_table('engagement_sweeps',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('swept_at', drip.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('engagement_sweeps')
    op.drop_table('engagement_days')
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_index('ix_subscribers_engagement_id')
        batch_op.drop_column('repermission_at')
        batch_op.drop_column('engaged_at')
        batch_op.drop_column('engagement')
