"""signed, random Message-IDs kept on every message's row; bounce events say if verified

Every message drip sends now carries a Message-ID with a random part and an HMAC under the
secret key (drip.mail.message_ids), written on its row before the hand-off so a retry reuses it:
deliveries had the column already; broadcast copies, fresh-link requests and enrollments (for
their confirmation email or course offer) gain one. A bounce or complaint report changes a
reader only when it proves it came from a message drip sent (`bounce_events.verified`).
Events recorded before this revision count as verified when they matched by the signed VERP
address, the only proof drip had then.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

MESSAGE_IDS = [
    ('enrollments', 'pending_message_id'),
    ('broadcast_recipients', 'message_id'),
    ('link_requests', 'message_id'),
]


def upgrade() -> None:
    for table, column in MESSAGE_IDS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(column, sa.String(length=255), nullable=True))
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('verified', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.execute("UPDATE bounce_events SET verified = TRUE WHERE matched_by = 'verp'")


def downgrade() -> None:
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.drop_column('verified')
    for table, column in reversed(MESSAGE_IDS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column(column)
