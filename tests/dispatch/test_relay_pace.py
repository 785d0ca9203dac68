"""The relay's pace: drip sends as fast as the relay allows and never faster
(DRIP_SEND_RATE, shared by every worker), keeps several SMTP sessions busy
(DRIP_SMTP_CONNECTIONS) with every guarantee, and rests when the relay says "slow down"
instead of charging each reader an attempt."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from drip.core.clock import FrozenClock
from drip.services import build_services
from drip.store.db import make_engine
from drip.store.models import Delivery, Enrollment
from tests.bulk import add_due_readers
from tests.conftest import TESTS, make_settings
from tests.dispatch.test_crash_recovery import DRIP
from tests.smtp import SmtpServer


def once_each(server: SmtpServer) -> Counter[str]:
    return Counter(r for m in server.messages for r in m.recipients)


def test_a_relay_that_says_slow_down_rests_the_worker_and_charges_no_reader_an_attempt(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    smtp_server.handler.data_answer = lambda n: (
        "421 4.7.0 Try again later, closing connection" if n % 10 == 0 else None
    )
    engine = make_engine(backend_url)
    addresses = add_due_readers(engine, 30, clock())
    engine.dispose()
    svc = build_services(
        make_settings(tmp_path, backend_url, smtp_url=smtp_server.url, batch_size=12), clock
    )
    dispatcher = svc.dispatcher()
    rested = 0
    for _ in range(60):
        report = dispatcher.run_pass(clock())
        rested += dispatcher.rest_until is not None and dispatcher.rest_until > clock()
        if sorted(once_each(smtp_server)) == sorted(addresses):
            break
        clock.advance(seconds=40)

    assert once_each(smtp_server) == Counter({address: 1 for address in addresses})
    assert rested >= 2  # the worker rested after each "slow down"
    with svc.sessions() as session:
        enrollments = session.scalars(select(Enrollment)).all()
        assert {e.status for e in enrollments} == {"active"}  # nobody paused
        assert {e.attempts for e in enrollments} == {0}  # nobody charged an attempt
        assert {d.status for d in session.scalars(select(Delivery))} == {"sent"}
    assert report.count("failed") == 0
    svc.engine.dispose()


def test_several_smtp_connections_send_each_message_once_with_every_guarantee(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine = make_engine(backend_url)
    addresses = add_due_readers(engine, 120, clock())
    engine.dispose()
    svc = build_services(
        make_settings(tmp_path, backend_url, smtp_url=smtp_server.url, smtp_connections=4), clock
    )

    report = svc.dispatcher().run_pass(clock())

    assert report.count("sent") == 120
    assert once_each(smtp_server) == Counter({address: 1 for address in addresses})
    assert len({m.peer for m in smtp_server.messages}) == 4  # four sessions at once
    with svc.sessions() as session:
        assert Counter(d.status for d in session.scalars(select(Delivery))) == {"sent": 120}
    svc.engine.dispose()


def busiest_second(times: list[float]) -> int:
    """The most messages any one-second window [t, t + 1) holds."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.mark.postgres
@pytest.mark.slow
def test_four_workers_on_postgres_never_exceed_the_send_rate_together(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine = make_engine(postgres_url)
    addresses = add_due_readers(engine, 400, clock())
    engine.dispose()
    env = {
        **os.environ,
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": postgres_url,
        "DRIP_SEQUENCES_DIR": str(TESTS / "sequences"),
        "DRIP_SECRET_KEY": "k",
        "DRIP_BASE_URL": "http://drip.test",
        "DRIP_SMTP_URL": smtp_server.url,
        "DRIP_SEND_RATE": "20",
        "DRIP_BATCH_SIZE": "50",
        "DRIP_SMTP_CONNECTIONS": "2",
        "DRIP_ALLOW_UNSAFE_SENDING": "true",
        "DRIP_POSTAL_ADDRESS": "1 Test Street",
    }
    workers = [
        subprocess.Popen(
            [DRIP, "dispatch", "--now", clock().isoformat()],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for worker in workers:
        assert worker.wait(timeout=120) == 0, worker.stderr.read() if worker.stderr else ""

    times = [m.at for m in smtp_server.messages]
    assert once_each(smtp_server) == Counter({address: 1 for address in addresses})
    assert busiest_second(times) <= 20
    assert max(times) - min(times) >= 19  # 400 messages at 20 a second
