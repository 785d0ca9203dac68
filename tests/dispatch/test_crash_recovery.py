"""A worker killed with SIGKILL mid-pass, again and again: no lesson lost, and never more
duplicates than kills (the documented ambiguous case: a message the SMTP server accepted
whose outcome the dying worker did not record is sent again under the same Message-ID)."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import select

from drip.core.clock import FrozenClock
from drip.store.db import make_engine
from drip.store.models import Delivery, DeliveryStatus
from tests.bulk import add_due_readers
from tests.conftest import TESTS
from tests.smtp import SmtpServer

DRIP = str(Path(sys.executable).with_name("drip"))
READERS = 1_000
KILLS = 4
LEASE = 30


def received_at_least(server: SmtpServer, count: int) -> bool:
    return len(server.messages) >= count


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll what the worker visibly did (messages at the SMTP server); no clock is slept on."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


@pytest.mark.slow
def test_killed_workers_lose_no_lesson_and_duplicate_at_most_once_per_kill(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine = make_engine(sqlite_url)
    addresses = add_due_readers(engine, READERS, clock())
    env = {
        **os.environ,
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": sqlite_url,
        "DRIP_SEQUENCES_DIR": str(TESTS / "sequences"),
        "DRIP_SECRET_KEY": "k",
        "DRIP_BASE_URL": "http://drip.test",
        "DRIP_SMTP_URL": smtp_server.url,
        "DRIP_ALLOW_UNSAFE_SENDING": "true",
        "DRIP_LEASE_SECONDS": str(LEASE),
        "DRIP_BATCH_SIZE": "50",
    }
    rng = random.Random(20261123)
    now = clock()
    kills = 0
    while kills < KILLS:
        before = len(smtp_server.messages)
        started = time.monotonic()
        worker = subprocess.Popen(
            [DRIP, "dispatch", "--now", now.isoformat()],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        target = before + rng.randint(20, 150)  # a random moment, counted in messages ...
        reached = wait_until(partial(received_at_least, smtp_server, target), 60)
        time.sleep(rng.uniform(0, 0.02))  # ... plus a random fraction of the next one
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert reached, "the worker sent nothing within a minute"
        kills += 1
        # Past the end of every lease the dead worker took: leases run from each claim.
        now += timedelta(seconds=LEASE + math.ceil(time.monotonic() - started) + 1)

    final = subprocess.run(
        [DRIP, "dispatch", "--now", now.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr
    assert "nothing due" not in final.stdout  # the killed passes left work for this one

    received = Counter(
        (r, str(m.message["Message-ID"])) for m in smtp_server.messages for r in m.recipients
    )
    got = {recipient for recipient, _ in received}
    assert got == set(addresses)  # no lesson lost
    assert len(received) == READERS  # one Message-ID per reader: retries reuse it
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= kills
    with engine.connect() as conn:
        statuses = Counter(conn.scalars(select(Delivery.status)))
    assert statuses == {DeliveryStatus.SENT: READERS}
    engine.dispose()
