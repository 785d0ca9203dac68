"""broadcast copies found by when they were sent: (sent_at); the reader's index alone goes

Each pass's engagement sweep asks which readers were sent something since the last sweep
(drip.audience.engagement). Deliveries have an index on `sent_at`; broadcast copies had
none, so both databases read every copy ever sent, on every pass, growing with each
broadcast. The index on `subscriber_id` alone is the first column of
`ix_broadcast_recipients_subscriber_sent`, which serves every question it did (the caps,
a reader's page, erasing a reader): it goes, and a copy still writes as many index
entries as before.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 20:30:00
"""

from __future__ import annotations

from alembic import op

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_broadcast_recipients_sent_at', 'broadcast_recipients', ['sent_at'])
    op.drop_index('ix_broadcast_recipients_subscriber_id', table_name='broadcast_recipients')


def downgrade() -> None:
    op.create_index(
        'ix_broadcast_recipients_subscriber_id', 'broadcast_recipients', ['subscriber_id']
    )
    op.drop_index('ix_broadcast_recipients_sent_at', table_name='broadcast_recipients')
