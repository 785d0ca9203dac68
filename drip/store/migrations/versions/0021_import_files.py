"""an import job's CSV is kept as a private file in the data folder, not in its row

`import_jobs.file` names the upload's file under the data folder (imports/...), read as a
stream by the worker; `csv` stays for jobs queued before this revision (new jobs leave it
empty). With the text in the row, every progress update rewrote the whole file.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('file', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_column('file')
