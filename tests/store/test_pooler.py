"""Behind PgBouncer in transaction mode (DRIP_DATABASE_POOLER): each transaction may get
another server connection, so a statement prepared by name on one is missing on the next,
or already there. Without the setting drip cannot connect (PgBouncer refuses the
`options` drip sets at connect), and told to ignore them, a pass over several SMTP
sessions failed at its first records ("prepared statement ... already exists"). With it,
nothing is prepared by name and nothing is set at connect."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from drip.core.clock import FrozenClock
from drip.services import build_services
from drip.store.db import DatabaseProblem, check_database, make_engine
from drip.store.models import Delivery, DeliveryStatus
from tests.bulk import add_due_readers
from tests.conftest import make_settings
from tests.pgbouncer import start_pgbouncer
from tests.smtp import SmtpServer


def test_a_pass_over_four_sessions_behind_pgbouncer_sends_each_lesson_once(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    bouncer = start_pgbouncer(postgres_url)
    try:
        settings = make_settings(
            tmp_path,
            bouncer.url,
            smtp_url=smtp_server.url,
            smtp_connections=4,
            database_pooler=True,
        )
        svc = build_services(settings, clock)
        addresses = add_due_readers(svc.engine, 40, clock())
        first = svc.dispatcher().run_pass(clock())
        second = svc.dispatcher().run_pass(clock())
        with svc.sessions() as session:
            sent = session.scalar(
                select(func.count(Delivery.id)).where(Delivery.status == DeliveryStatus.SENT)
            )
        svc.engine.dispose()
    finally:
        bouncer.stop()
    assert (first.count("sent"), second.count("sent")) == (40, 0), first.summary()
    assert sorted(r for m in smtp_server.messages for r in m.recipients) == sorted(addresses)
    assert len({m.peer for m in smtp_server.messages}) == 4  # four sessions at once
    assert sent == 40


def test_drip_check_behind_pgbouncer_without_the_setting_says_to_set_it(
    tmp_path: Path, postgres_url: str
) -> None:
    bouncer = start_pgbouncer(postgres_url)
    try:
        engine = make_engine(bouncer.url)
        with pytest.raises(DatabaseProblem) as problem:
            check_database(engine)
        engine.dispose()
    finally:
        bouncer.stop()
    assert str(problem.value).endswith(
        "behind a pooler such as PgBouncer, set DRIP_DATABASE_POOLER=true"
    )
    assert "unsupported startup parameter: options" in str(problem.value)
