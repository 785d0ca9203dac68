"""indexes on the foreign keys an erasure cascades through

Deleting a reader deletes their enrollments, consent records, events and broadcast and
bounce rows by ON DELETE CASCADE; without an index on each referencing column the database
reads the whole referencing table once per deleted row, which a bulk erase of thousands of
readers turns into minutes.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

from alembic import op


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

INDEXES = [
    ('consent_records', 'ix_consent_records_subscriber_id', ['subscriber_id']),
    ('consent_records', 'ix_consent_records_enrollment_id', ['enrollment_id']),
    ('events', 'ix_events_enrollment_id', ['enrollment_id']),
    ('broadcast_recipients', 'ix_broadcast_recipients_enrollment_id', ['enrollment_id']),
    ('bounce_events', 'ix_bounce_events_enrollment_id', ['enrollment_id']),
]


def upgrade() -> None:
    for table, name, columns in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    for table, name, _columns in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
