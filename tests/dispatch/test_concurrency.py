"""Several workers at once: disjoint claims on PostgreSQL, one worker at a time on SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from drip.core.clock import FrozenClock
from drip.dispatch import dispatch_lock
from drip.store.db import make_engine
from drip.store.models import Delivery, DeliveryStatus, Enrollment, WorkerHeartbeat
from tests.bulk import add_due_readers
from tests.conftest import TESTS
from tests.smtp import SmtpServer

DRIP = str(Path(sys.executable).with_name("drip"))
WORKERS = 4
READERS = 2_000


def worker_env(tmp_path: Path, database_url: str, smtp_server: SmtpServer) -> dict[str, str]:
    return {
        **os.environ,
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": database_url,
        "DRIP_SEQUENCES_DIR": str(TESTS / "sequences"),
        "DRIP_SECRET_KEY": "k",
        "DRIP_BASE_URL": "http://drip.test",
        "DRIP_SMTP_URL": smtp_server.url,
        "DRIP_ALLOW_UNSAFE_SENDING": "true",
        "DRIP_BATCH_SIZE": "25",
    }


@pytest.mark.slow
@pytest.mark.postgres
def test_four_workers_on_postgresql_deliver_every_lesson_exactly_once(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine = make_engine(postgres_url)
    addresses = add_due_readers(engine, READERS, clock())
    env = worker_env(tmp_path, postgres_url, smtp_server)
    command = [DRIP, "dispatch", "--now", clock().isoformat()]
    workers = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(WORKERS)
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err

    received = Counter(
        (r, str(m.message["Message-ID"])) for m in smtp_server.messages for r in m.recipients
    )
    assert {recipient for recipient, _ in received} == set(addresses)
    assert len(received) == READERS
    assert set(received.values()) == {1}  # every lesson exactly once at the SMTP server
    sent_per_worker = [out.count("\nsent ") + out.startswith("sent ") for out, _ in outputs]
    assert sum(sent_per_worker) == READERS
    assert sum(1 for n in sent_per_worker if n) > 1  # the work was shared, not serialised
    with engine.connect() as conn:
        assert Counter(conn.scalars(select(Delivery.status))) == {DeliveryStatus.SENT: READERS}
        assert conn.scalar(select(func.count(func.distinct(Delivery.enrollment_id)))) == READERS
        assert conn.scalar(select(func.count()).select_from(WorkerHeartbeat)) == WORKERS
        assert (
            conn.scalar(
                select(func.count()).select_from(Enrollment).where(Enrollment.due_at <= clock())
            )
            == 0
        )
    engine.dispose()


@pytest.mark.slow
def test_second_dispatcher_on_sqlite_refuses_and_says_why(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine = make_engine(sqlite_url)
    add_due_readers(engine, 3, clock())
    env = worker_env(tmp_path, sqlite_url, smtp_server)
    command = [DRIP, "dispatch", "--now", clock().isoformat()]
    with dispatch_lock(engine):  # this test process is the worker already dispatching
        refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert f"another drip worker (pid {os.getpid()}) is already dispatching" in refused.stderr
    assert "SQLite allows one worker at a time" in refused.stderr
    assert smtp_server.messages == []

    allowed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert allowed.returncode == 0, allowed.stderr
    assert len(smtp_server.messages) == 3
    engine.dispose()
