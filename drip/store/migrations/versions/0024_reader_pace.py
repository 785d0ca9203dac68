"""the reader's pace: slower, paused until a date or until they come back

`enrollments.slower` counts each lesson's delay twice; `paused_since` and `resumes_at` hold a
course the reader paused (no `resumes_at`: until they come back), `pause_kind` says whether
it was a pause or an absence ("away until"), and `still_wanted_at` is when
the one "still want the course?" email went out after a pause of more than 60 days.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drip.store.models


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


COLUMNS = ('slower', 'paused_since', 'resumes_at', 'still_wanted_at', 'pause_kind')


def upgrade() -> None:
    # Plain ADD COLUMN (no batch): SQLite would otherwise copy the table, and the tally
    # triggers on it (migration 0003) would break.
    op.add_column(
        'enrollments',
        sa.Column('slower', sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    for column in COLUMNS[1:4]:
        op.add_column(
            'enrollments',
            sa.Column(column, drip.store.models.UTCDateTime(timezone=True), nullable=True),
        )
    op.add_column('enrollments', sa.Column('pause_kind', sa.String(length=10), nullable=True))


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.execute(f'ALTER TABLE enrollments DROP COLUMN {column}')
