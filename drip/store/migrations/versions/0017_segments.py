"""segments, broadcast drafts' author, and the indexes the segment filters use

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 02:00:00

The exam-date filter compares the sign-up answer kept in `subscribers.attributes`; an
expression index on exactly the expression drip.audience.segments compiles lets the database find
those readers without reading every row (SQLite: json_extract; PostgreSQL: ->>). Tags
already have `ix_subscriber_tags_tag` and lessons `ix_deliveries_sent_at`; "clicked
lately" gets an index on the click's time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

EXAM_DATE = {
    'sqlite': "json_extract(attributes, '$.exam_date')",
    'postgresql': "(attributes ->> 'exam_date')",
}


def upgrade() -> None:
    op.create_table('segments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('created_at', drip.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=320), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_by', sa.String(length=320), server_default='', nullable=False))
    with op.batch_alter_table('link_clicks', schema=None) as batch_op:
        batch_op.create_index('ix_link_clicks_at', ['at'], unique=False)
    expression = EXAM_DATE.get(op.get_bind().dialect.name)
    if expression:
        op.execute(f'CREATE INDEX ix_subscribers_exam_date ON subscribers ({expression})')


def downgrade() -> None:
    op.execute('DROP INDEX IF EXISTS ix_subscribers_exam_date')
    with op.batch_alter_table('link_clicks', schema=None) as batch_op:
        batch_op.drop_index('ix_link_clicks_at')
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_column('created_by')
    op.drop_table('segments')
