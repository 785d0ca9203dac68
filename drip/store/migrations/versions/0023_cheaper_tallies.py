"""cheaper tallies on PostgreSQL: one cached statement per tally table, inserts counted per statement

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 17:40:00

The row triggers of 0003 called small SQL functions with PERFORM, and PostgreSQL plans the
body of a SQL function again at every call: recording one hand-off cost about 0.4 ms of
planning on top of 0.05 ms of work. The triggers now write each tally table with one
statement that PL/pgSQL plans once per connection, the old and new row's changes summed and
ordered by key (the same order as before, so concurrent workers still never deadlock).
Inserts (a batch of deliveries written as `sending`, an import's enrollments) are counted
once per statement from its transition table instead of once per row. The counts are the
same as 0003's; SQLite's triggers are left as they are (its triggers cost no planning).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

# The changes of one row as (key..., amounts) pairs for the old row (negative) and the new
# one; the summed, non-zero ones are applied in key order.
ENROLLMENT_ROW = """
CREATE OR REPLACE FUNCTION drip_tally_enrollment() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    o_sequence text; o_status text; o_confirmed integer := 0;
    n_sequence text; n_status text; n_confirmed integer := 0;
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- its deliveries first, while this row can still be read (see drip_tally_delivery)
        DELETE FROM deliveries WHERE enrollment_id = OLD.id;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        o_sequence := OLD.sequence; o_status := OLD.status;
        o_confirmed := (OLD.confirmed_at IS NOT NULL)::integer;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        n_sequence := NEW.sequence; n_status := NEW.status;
        n_confirmed := (NEW.confirmed_at IS NOT NULL)::integer;
    END IF;
    INSERT INTO enrollment_tallies AS t (sequence, status, enrollments, confirmed)
    SELECT c.sequence, c.status, sum(c.n)::integer, sum(c.confirmed)::integer
    FROM (VALUES (o_sequence, o_status, -1, -o_confirmed),
                 (n_sequence, n_status, 1, n_confirmed)) AS c (sequence, status, n, confirmed)
    WHERE c.sequence IS NOT NULL
    GROUP BY c.sequence, c.status
    HAVING sum(c.n) <> 0 OR sum(c.confirmed) <> 0
    ORDER BY c.sequence, c.status
    ON CONFLICT (sequence, status) DO UPDATE
    SET enrollments = t.enrollments + EXCLUDED.enrollments,
        confirmed = t.confirmed + EXCLUDED.confirmed;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NULL;
END $$
"""

ENROLLMENTS_INSERTED = """
CREATE FUNCTION drip_tally_enrollments_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO enrollment_tallies AS t (sequence, status, enrollments, confirmed)
    SELECT n.sequence, n.status, count(*)::integer,
           count(n.confirmed_at)::integer
    FROM inserted n
    GROUP BY n.sequence, n.status
    ORDER BY n.sequence, n.status
    ON CONFLICT (sequence, status) DO UPDATE
    SET enrollments = t.enrollments + EXCLUDED.enrollments,
        confirmed = t.confirmed + EXCLUDED.confirmed;
    RETURN NULL;
END $$
"""

DELIVERY_ROW = """
CREATE OR REPLACE FUNCTION drip_tally_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seq text;
    o_lesson text; o_status text; o_day date;
    n_lesson text; n_status text; n_day date;
BEGIN
    SELECT e.sequence INTO seq FROM enrollments e
    WHERE e.id = CASE WHEN TG_OP = 'DELETE' THEN OLD.enrollment_id ELSE NEW.enrollment_id END;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        o_lesson := OLD.lesson; o_status := OLD.status;
        o_day := CASE o_status WHEN 'sent' THEN (OLD.sent_at AT TIME ZONE 'UTC')::date
                               WHEN 'failed' THEN (OLD.updated_at AT TIME ZONE 'UTC')::date END;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        n_lesson := NEW.lesson; n_status := NEW.status;
        n_day := CASE n_status WHEN 'sent' THEN (NEW.sent_at AT TIME ZONE 'UTC')::date
                               WHEN 'failed' THEN (NEW.updated_at AT TIME ZONE 'UTC')::date END;
    END IF;
    IF o_lesson IS DISTINCT FROM n_lesson OR o_status IS DISTINCT FROM n_status THEN
        INSERT INTO delivery_tallies AS t (sequence, lesson, status, deliveries)
        SELECT seq, c.lesson, c.status, sum(c.n)::integer
        FROM (VALUES (o_lesson, o_status, -1), (n_lesson, n_status, 1)) AS c (lesson, status, n)
        WHERE c.lesson IS NOT NULL
        GROUP BY c.lesson, c.status
        ORDER BY c.lesson, c.status
        ON CONFLICT (sequence, lesson, status) DO UPDATE
        SET deliveries = t.deliveries + EXCLUDED.deliveries;
    END IF;
    IF o_day IS NOT NULL OR n_day IS NOT NULL THEN
        INSERT INTO daily_tallies AS t (day, sent, failed)
        SELECT c.day, sum(c.sent)::integer, sum(c.failed)::integer
        FROM (VALUES (o_day, -(o_status = 'sent')::integer, -(o_status = 'failed')::integer),
                     (n_day, (n_status = 'sent')::integer, (n_status = 'failed')::integer))
             AS c (day, sent, failed)
        WHERE c.day IS NOT NULL
        GROUP BY c.day
        HAVING sum(c.sent) <> 0 OR sum(c.failed) <> 0
        ORDER BY c.day
        ON CONFLICT (day) DO UPDATE
        SET sent = t.sent + EXCLUDED.sent, failed = t.failed + EXCLUDED.failed;
    END IF;
    RETURN NULL;
END $$
"""

DELIVERIES_INSERTED = """
CREATE FUNCTION drip_tally_deliveries_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_tallies AS t (sequence, lesson, status, deliveries)
    SELECT e.sequence, n.lesson, n.status, count(*)::integer
    FROM inserted n JOIN enrollments e ON e.id = n.enrollment_id
    GROUP BY e.sequence, n.lesson, n.status
    ORDER BY e.sequence, n.lesson, n.status
    ON CONFLICT (sequence, lesson, status) DO UPDATE
    SET deliveries = t.deliveries + EXCLUDED.deliveries;
    INSERT INTO daily_tallies AS t (day, sent, failed)
    SELECT c.day, count(*) FILTER (WHERE c.status = 'sent')::integer,
           count(*) FILTER (WHERE c.status = 'failed')::integer
    FROM (SELECT n.status,
                 CASE n.status WHEN 'sent' THEN (n.sent_at AT TIME ZONE 'UTC')::date
                               WHEN 'failed' THEN (n.updated_at AT TIME ZONE 'UTC')::date
                 END AS day
          FROM inserted n JOIN enrollments e ON e.id = n.enrollment_id) AS c
    WHERE c.day IS NOT NULL
    GROUP BY c.day
    ORDER BY c.day
    ON CONFLICT (day) DO UPDATE
    SET sent = t.sent + EXCLUDED.sent, failed = t.failed + EXCLUDED.failed;
    RETURN NULL;
END $$
"""

POSTGRES_UP = [
    ENROLLMENT_ROW,
    DELIVERY_ROW,
    ENROLLMENTS_INSERTED,
    DELIVERIES_INSERTED,
    "DROP TRIGGER tally_enrollments_insert ON enrollments",
    """
    CREATE TRIGGER tally_enrollments_insert AFTER INSERT ON enrollments
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION drip_tally_enrollments_inserted()
    """,
    "DROP TRIGGER tally_deliveries_insert_delete ON deliveries",
    """
    CREATE TRIGGER tally_deliveries_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION drip_tally_deliveries_inserted()
    """,
    """
    CREATE TRIGGER tally_deliveries_delete AFTER DELETE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION drip_tally_delivery()
    """,
    "DROP FUNCTION drip_tally_day(date, integer, integer)",
    "DROP FUNCTION drip_tally_delivery_row(text, text, text, integer)",
    "DROP FUNCTION drip_tally_enrollment_row(text, text, integer, integer)",
]

POSTGRES_DOWN = [
    "DROP TRIGGER tally_deliveries_delete ON deliveries",
    "DROP TRIGGER tally_deliveries_insert ON deliveries",
    "DROP TRIGGER tally_enrollments_insert ON enrollments",
    "DROP FUNCTION drip_tally_deliveries_inserted()",
    "DROP FUNCTION drip_tally_enrollments_inserted()",
    "DROP TRIGGER tally_deliveries_update ON deliveries",
    "DROP TRIGGER tally_enrollments_update ON enrollments",
    "DROP TRIGGER tally_enrollments_delete ON enrollments",
    "DROP FUNCTION drip_tally_delivery()",
    "DROP FUNCTION drip_tally_enrollment()",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in POSTGRES_UP:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in POSTGRES_DOWN:
        op.execute(statement)
    path = Path(__file__).with_name("0003_admin_rollups.py")
    spec = importlib.util.spec_from_file_location("drip_migration_0003", path)
    assert spec is not None and spec.loader is not None
    rollups_0003 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rollups_0003)
    for statement in rollups_0003.POSTGRES_UP:  # 0003's functions and triggers, as they were
        op.execute(statement)
