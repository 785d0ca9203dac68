"""PostgreSQL crashes (an immediate-mode restart) in the middle of a pass, on a cluster of the
test's own: nothing is lost, and at most the one message of the SMTP session whose outcome
was not yet recorded goes out twice, under the same Message-ID (drip.dispatch.send)."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from drip.core.clock import FrozenClock
from drip.store.db import make_engine, migrate
from drip.store.models import OUTCOME_UNKNOWN, Delivery, DeliveryStatus
from tests.bulk import add_due_readers
from tests.conftest import unavailable
from tests.dispatch.test_concurrency import DRIP, worker_env
from tests.pgcluster import Cluster, postgres_version
from tests.smtp import SmtpServer

READERS = 600
CRASH_AFTER = 120  # messages at the SMTP server before the crash
LEASE = timedelta(minutes=5)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    version = postgres_version()
    if version is None:
        unavailable("no PostgreSQL server binaries for pg_createcluster here")
    own = Cluster(version)
    yield own
    own.drop()


def wait_for_messages(server: SmtpServer, count: int, worker: subprocess.Popen[str]) -> None:
    """Poll the SMTP server until the worker has handed `count` messages over."""
    deadline = time.monotonic() + 120
    while len(server.messages) < count:
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, "the worker did not get going"
        time.sleep(0.002)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_postgresql_crash_mid_pass_loses_nothing_and_duplicates_at_most_one_per_session(
    tmp_path: Path, cluster: Cluster, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    admin = make_engine(cluster.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE drip"))
    admin.dispose()
    url = cluster.url.rsplit("/", 1)[0] + "/drip"
    engine = make_engine(url)
    migrate(engine)
    addresses = add_due_readers(engine, READERS, clock())
    engine.dispose()
    env = worker_env(tmp_path, url, smtp_server)

    def dispatch(at: timedelta) -> subprocess.Popen[str]:
        command = [DRIP, "dispatch", "--now", (clock() + at).isoformat()]
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    worker = dispatch(timedelta())
    wait_for_messages(smtp_server, CRASH_AFTER, worker)
    cluster.crash_and_restart()
    _, crashed = worker.communicate(timeout=120)
    assert worker.returncode != 0, "the pass went on through the crash"
    at_crash = len(smtp_server.messages)
    assert at_crash < READERS, "the pass ended before the crash: nothing was tested"

    # After the crash, a worker once the dead one's lease is over, then again if need be.
    for later in (LEASE + timedelta(minutes=1), LEASE + timedelta(minutes=10)):
        again = dispatch(later)
        _, err = again.communicate(timeout=300)
        assert again.returncode == 0, err

    received = Counter(r for m in smtp_server.messages for r in m.recipients)
    assert set(received) == set(addresses)  # nothing lost
    twice = [address for address, n in received.items() if n > 1]
    assert len(twice) <= 1, f"{len(twice)} duplicates after one crash of one SMTP session"
    for address in twice:
        ids = {str(m.message["Message-ID"]) for m in smtp_server.to(address)}
        assert len(ids) == 1, f"{address} got the lesson twice under different Message-IDs"
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.status, Delivery.last_error)).all()
    engine.dispose()
    assert len(rows) == READERS
    assert {status for status, _ in rows} == {DeliveryStatus.SENT}
    unknown = sum(1 for _, note in rows if (note or "").startswith(OUTCOME_UNKNOWN))
    assert unknown >= len(twice)  # each reader who may have it twice is marked so
    assert "deadlock" not in cluster.server_log()
    assert crashed  # the dead worker said why it stopped
