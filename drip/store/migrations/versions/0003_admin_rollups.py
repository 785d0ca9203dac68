"""admin rollups: tallies kept by triggers, indexes for keyset pages and address search

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:50:00.000000

The tallies are kept by row triggers on `enrollments` and `deliveries`, so every writer
(the dispatcher, the intake, the operator's buttons, an erasure) keeps them right in its own
transaction without knowing they exist. A delivery counts under its enrollment's sequence;
an enrollment that is deleted first deletes its deliveries (a BEFORE trigger), so each is
subtracted while its enrollment can still be read, also when the deletion cascades from a
subscriber. Where a change moves a count from one row to another, the rows are updated in
a fixed order (by key), so two transactions never wait for each other in a circle.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from drip.store import rollups

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

POSTGRES_UP = [
    """
    CREATE FUNCTION drip_tally_enrollment_row(p_sequence text, p_status text, p_n integer,
                                              p_confirmed integer) RETURNS void
    LANGUAGE sql AS $$
        INSERT INTO enrollment_tallies AS t (sequence, status, enrollments, confirmed)
        VALUES (p_sequence, p_status, p_n, p_confirmed)
        ON CONFLICT (sequence, status) DO UPDATE
        SET enrollments = t.enrollments + EXCLUDED.enrollments,
            confirmed = t.confirmed + EXCLUDED.confirmed
    $$
    """,
    """
    CREATE FUNCTION drip_tally_enrollment() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            PERFORM drip_tally_enrollment_row(NEW.sequence, NEW.status, 1,
                (NEW.confirmed_at IS NOT NULL)::integer);
            RETURN NULL;
        ELSIF TG_OP = 'DELETE' THEN
            -- its deliveries first, while this row can still be read (see drip_tally_delivery)
            DELETE FROM deliveries WHERE enrollment_id = OLD.id;
            PERFORM drip_tally_enrollment_row(OLD.sequence, OLD.status, -1,
                -(OLD.confirmed_at IS NOT NULL)::integer);
            RETURN OLD;
        END IF;
        IF (OLD.sequence, OLD.status) <= (NEW.sequence, NEW.status) THEN
            PERFORM drip_tally_enrollment_row(OLD.sequence, OLD.status, -1,
                -(OLD.confirmed_at IS NOT NULL)::integer);
            PERFORM drip_tally_enrollment_row(NEW.sequence, NEW.status, 1,
                (NEW.confirmed_at IS NOT NULL)::integer);
        ELSE
            PERFORM drip_tally_enrollment_row(NEW.sequence, NEW.status, 1,
                (NEW.confirmed_at IS NOT NULL)::integer);
            PERFORM drip_tally_enrollment_row(OLD.sequence, OLD.status, -1,
                -(OLD.confirmed_at IS NOT NULL)::integer);
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER tally_enrollments_insert AFTER INSERT ON enrollments
    FOR EACH ROW EXECUTE FUNCTION drip_tally_enrollment()
    """,
    """
    CREATE TRIGGER tally_enrollments_update AFTER UPDATE OF sequence, status, confirmed_at
    ON enrollments FOR EACH ROW
    WHEN (OLD.sequence IS DISTINCT FROM NEW.sequence OR OLD.status IS DISTINCT FROM NEW.status
          OR (OLD.confirmed_at IS NULL) <> (NEW.confirmed_at IS NULL))
    EXECUTE FUNCTION drip_tally_enrollment()
    """,
    """
    CREATE TRIGGER tally_enrollments_delete BEFORE DELETE ON enrollments
    FOR EACH ROW EXECUTE FUNCTION drip_tally_enrollment()
    """,
    """
    CREATE FUNCTION drip_tally_delivery_row(p_sequence text, p_lesson text, p_status text,
                                            p_n integer) RETURNS void
    LANGUAGE sql AS $$
        INSERT INTO delivery_tallies AS t (sequence, lesson, status, deliveries)
        VALUES (p_sequence, p_lesson, p_status, p_n)
        ON CONFLICT (sequence, lesson, status) DO UPDATE
        SET deliveries = t.deliveries + EXCLUDED.deliveries
    $$
    """,
    """
    CREATE FUNCTION drip_tally_day(p_day date, p_sent integer, p_failed integer) RETURNS void
    LANGUAGE sql AS $$
        INSERT INTO daily_tallies AS t (day, sent, failed) VALUES (p_day, p_sent, p_failed)
        ON CONFLICT (day) DO UPDATE
        SET sent = t.sent + EXCLUDED.sent, failed = t.failed + EXCLUDED.failed
    $$
    """,
    """
    CREATE FUNCTION drip_tally_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        seq text;
        old_day date;
        new_day date;
    BEGIN
        SELECT sequence INTO seq FROM enrollments
        WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.enrollment_id
                        ELSE NEW.enrollment_id END;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        IF TG_OP <> 'INSERT' THEN
            old_day := CASE WHEN OLD.status = 'sent' THEN (OLD.sent_at AT TIME ZONE 'UTC')::date
                            WHEN OLD.status = 'failed'
                            THEN (OLD.updated_at AT TIME ZONE 'UTC')::date END;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            new_day := CASE WHEN NEW.status = 'sent' THEN (NEW.sent_at AT TIME ZONE 'UTC')::date
                            WHEN NEW.status = 'failed'
                            THEN (NEW.updated_at AT TIME ZONE 'UTC')::date END;
        END IF;
        IF TG_OP = 'INSERT' THEN
            PERFORM drip_tally_delivery_row(seq, NEW.lesson, NEW.status, 1);
        ELSIF TG_OP = 'DELETE' THEN
            PERFORM drip_tally_delivery_row(seq, OLD.lesson, OLD.status, -1);
        ELSIF (OLD.lesson, OLD.status) <= (NEW.lesson, NEW.status) THEN
            PERFORM drip_tally_delivery_row(seq, OLD.lesson, OLD.status, -1);
            PERFORM drip_tally_delivery_row(seq, NEW.lesson, NEW.status, 1);
        ELSE
            PERFORM drip_tally_delivery_row(seq, NEW.lesson, NEW.status, 1);
            PERFORM drip_tally_delivery_row(seq, OLD.lesson, OLD.status, -1);
        END IF;
        IF old_day IS NOT NULL AND (new_day IS NULL OR old_day <= new_day) THEN
            PERFORM drip_tally_day(old_day, -(OLD.status = 'sent')::integer,
                                   -(OLD.status = 'failed')::integer);
            old_day := NULL;
        END IF;
        IF new_day IS NOT NULL THEN
            PERFORM drip_tally_day(new_day, (NEW.status = 'sent')::integer,
                                   (NEW.status = 'failed')::integer);
        END IF;
        IF old_day IS NOT NULL THEN
            PERFORM drip_tally_day(old_day, -(OLD.status = 'sent')::integer,
                                   -(OLD.status = 'failed')::integer);
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER tally_deliveries_insert_delete AFTER INSERT OR DELETE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION drip_tally_delivery()
    """,
    """
    CREATE TRIGGER tally_deliveries_update AFTER UPDATE ON deliveries FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.lesson IS DISTINCT FROM NEW.lesson
          OR OLD.enrollment_id IS DISTINCT FROM NEW.enrollment_id
          OR OLD.sent_at IS DISTINCT FROM NEW.sent_at
          OR (NEW.status = 'failed' AND OLD.updated_at IS DISTINCT FROM NEW.updated_at))
    EXECUTE FUNCTION drip_tally_delivery()
    """,
]

POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS tally_deliveries_update ON deliveries",
    "DROP TRIGGER IF EXISTS tally_deliveries_insert_delete ON deliveries",
    "DROP TRIGGER IF EXISTS tally_enrollments_delete ON enrollments",
    "DROP TRIGGER IF EXISTS tally_enrollments_update ON enrollments",
    "DROP TRIGGER IF EXISTS tally_enrollments_insert ON enrollments",
    "DROP FUNCTION IF EXISTS drip_tally_delivery()",
    "DROP FUNCTION IF EXISTS drip_tally_day(date, integer, integer)",
    "DROP FUNCTION IF EXISTS drip_tally_delivery_row(text, text, text, integer)",
    "DROP FUNCTION IF EXISTS drip_tally_enrollment()",
    "DROP FUNCTION IF EXISTS drip_tally_enrollment_row(text, text, integer, integer)",
]


def _sqlite_enrollment(row: str, sign: str) -> str:
    return f"""
        INSERT INTO enrollment_tallies (sequence, status, enrollments, confirmed)
        VALUES ({row}.sequence, {row}.status, {sign}1,
                {sign}({row}.confirmed_at IS NOT NULL))
        ON CONFLICT (sequence, status) DO UPDATE
        SET enrollments = enrollments + excluded.enrollments,
            confirmed = confirmed + excluded.confirmed;"""


def _sqlite_delivery(row: str, sign: str) -> str:
    day = (f"CASE {row}.status WHEN 'sent' THEN date({row}.sent_at) "
           f"WHEN 'failed' THEN date({row}.updated_at) END")
    return f"""
        INSERT INTO delivery_tallies (sequence, lesson, status, deliveries)
        SELECT e.sequence, {row}.lesson, {row}.status, {sign}1 FROM enrollments e
        WHERE e.id = {row}.enrollment_id
        ON CONFLICT (sequence, lesson, status) DO UPDATE
        SET deliveries = deliveries + excluded.deliveries;
        INSERT INTO daily_tallies (day, sent, failed)
        SELECT {day}, {sign}({row}.status = 'sent'), {sign}({row}.status = 'failed')
        WHERE {day} IS NOT NULL
          AND EXISTS (SELECT 1 FROM enrollments e WHERE e.id = {row}.enrollment_id)
        ON CONFLICT (day) DO UPDATE
        SET sent = sent + excluded.sent, failed = failed + excluded.failed;"""


# SQLite has one writer at a time, so the order of the updates does not matter there.
SQLITE_UP = [
    f"""CREATE TRIGGER tally_enrollments_insert AFTER INSERT ON enrollments BEGIN
        {_sqlite_enrollment("NEW", "+")}
    END""",
    f"""CREATE TRIGGER tally_enrollments_update AFTER UPDATE OF sequence, status, confirmed_at
    ON enrollments
    WHEN OLD.sequence IS NOT NEW.sequence OR OLD.status IS NOT NEW.status
         OR (OLD.confirmed_at IS NULL) <> (NEW.confirmed_at IS NULL)
    BEGIN
        {_sqlite_enrollment("OLD", "-")}
        {_sqlite_enrollment("NEW", "+")}
    END""",
    f"""CREATE TRIGGER tally_enrollments_delete BEFORE DELETE ON enrollments BEGIN
        DELETE FROM deliveries WHERE enrollment_id = OLD.id;
        {_sqlite_enrollment("OLD", "-")}
    END""",
    f"""CREATE TRIGGER tally_deliveries_insert AFTER INSERT ON deliveries BEGIN
        {_sqlite_delivery("NEW", "+")}
    END""",
    f"""CREATE TRIGGER tally_deliveries_update AFTER UPDATE ON deliveries
    WHEN OLD.status IS NOT NEW.status OR OLD.lesson IS NOT NEW.lesson
         OR OLD.enrollment_id IS NOT NEW.enrollment_id OR OLD.sent_at IS NOT NEW.sent_at
         OR (NEW.status = 'failed' AND OLD.updated_at IS NOT NEW.updated_at)
    BEGIN
        {_sqlite_delivery("OLD", "-")}
        {_sqlite_delivery("NEW", "+")}
    END""",
    f"""CREATE TRIGGER tally_deliveries_delete AFTER DELETE ON deliveries BEGIN
        {_sqlite_delivery("OLD", "-")}
    END""",
]

SQLITE_DOWN = [
    f"DROP TRIGGER IF EXISTS {name}" for name in (
        "tally_deliveries_delete", "tally_deliveries_update", "tally_deliveries_insert",
        "tally_enrollments_delete", "tally_enrollments_update", "tally_enrollments_insert")
]


def upgrade() -> None:
    op.create_table('daily_tallies',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('sent', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day')
    )
    op.create_table('delivery_tallies',
    sa.Column('sequence', sa.String(length=100), nullable=False),
    sa.Column('lesson', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('deliveries', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('sequence', 'lesson', 'status')
    )
    op.create_table('enrollment_tallies',
    sa.Column('sequence', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('enrollments', sa.Integer(), nullable=False),
    sa.Column('confirmed', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('sequence', 'status')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_status_id', ['status', 'id'], unique=False)
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.create_index('ix_enrollments_sequence_id', ['sequence', 'id'], unique=False)
        batch_op.create_index('ix_enrollments_sequence_status_id', ['sequence', 'status', 'id'],
                              unique=False)
        batch_op.create_index('ix_enrollments_status_id', ['status', 'id'], unique=False)
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.create_index('ix_subscribers_email_prefix', ['email'], unique=False,
                              postgresql_ops={'email': 'text_pattern_ops'})

    bind = op.get_bind()
    for statement in POSTGRES_UP if bind.dialect.name == "postgresql" else SQLITE_UP:
        op.execute(statement)
    rollups.rebuild(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for statement in POSTGRES_DOWN if bind.dialect.name == "postgresql" else SQLITE_DOWN:
        op.execute(statement)
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_index('ix_subscribers_email_prefix',
                            postgresql_ops={'email': 'text_pattern_ops'})
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollments_status_id')
        batch_op.drop_index('ix_enrollments_sequence_status_id')
        batch_op.drop_index('ix_enrollments_sequence_id')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_status_id')
    op.drop_table('enrollment_tallies')
    op.drop_table('delivery_tallies')
    op.drop_table('daily_tallies')
