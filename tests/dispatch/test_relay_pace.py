"""The relay's pace: drip sends as fast as the relay allows and never faster
(DRIP_SEND_RATE, shared by every worker), keeps several SMTP sessions busy
(DRIP_SMTP_CONNECTIONS) with every guarantee, and rests when the relay says "slow down"
instead of charging each reader an attempt."""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from drip.core.clock import FrozenClock
from drip.dispatch import Dispatcher
from drip.mail.pace import MARGIN, Pace, Slot
from drip.services import build_services
from drip.store.db import make_engine
from drip.store.models import Delivery, Enrollment
from tests.bulk import add_due_readers
from tests.conftest import TESTS, make_settings
from tests.dispatch.test_crash_recovery import DRIP
from tests.smtp import SmtpServer

RATE = 20


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


def never_ahead_of(slots: list[float], arrivals: list[float]) -> bool:
    """Whether no message reached the relay before the slot it took. Each arrival comes after
    its own slot, so the k-th earliest arrival comes no earlier than the k-th earliest slot:
    a second at the relay holds only messages whose slots came in it or before it. Both
    times are on this host's one clock (time.time in the workers and at the sink)."""
    return len(arrivals) <= len(slots) and all(
        arrival >= slot for arrival, slot in zip(sorted(arrivals), sorted(slots), strict=False)
    )


def never_ahead_of_the_pace(start: float, rate: float, arrivals: list[float]) -> bool:
    """Whether the k-th message reached the relay no earlier than k slots (MARGIN/rate
    each) after `start`: the shared pace gives no slot before the moment it is asked (after
    `start`) nor two within MARGIN/rate of each other, and a message only leaves at its
    slot. No tolerance: all the load of the host can do is delay a message."""
    gap = MARGIN / rate
    return all(at - start >= k * gap - 1e-6 for k, at in enumerate(sorted(arrivals)))


class RecordingPace(Pace):
    """The real shared pace (DRIP_SEND_RATE's row in the database, the real clock), keeping
    the slot of each send it lets through."""

    def __init__(self, engine: Engine, rate: float, taken: list[float]) -> None:
        super().__init__(engine, rate)
        self.taken = taken

    def take(self) -> Slot:
        slot = super().take()
        self.taken.append(slot.at)  # list.append: safe from the SMTP sessions' threads
        return slot


@pytest.mark.postgres
@pytest.mark.slow
def test_four_workers_on_postgres_take_slots_that_never_crowd_a_second(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    """The guarantee itself, measured where drip keeps it: the slots each send took, from
    four dispatchers of their own (engine, pace, two SMTP sessions each), and the sink's
    arrival times against those slots."""
    engine = make_engine(postgres_url)
    addresses = add_due_readers(engine, 200, clock())
    engine.dispose()
    settings = make_settings(
        tmp_path,
        postgres_url,
        smtp_url=smtp_server.url,
        send_rate=RATE,
        batch_size=25,
        smtp_connections=2,
    )
    slots: list[float] = []

    def worker() -> None:
        svc = build_services(settings, clock)
        pace = RecordingPace(svc.engine, RATE, slots)
        try:
            Dispatcher(
                svc.engine,
                svc.settings,
                svc.content,
                svc.renderer,
                svc.links,
                svc.transport,
                clock=clock,
                pace=pace,
            ).run_pass(clock())
        finally:
            svc.engine.dispose()

    with ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(worker) for _ in range(4)]:
            done.result(timeout=120)

    assert once_each(smtp_server) == Counter({address: 1 for address in addresses})
    assert len(slots) == len(addresses)  # each hand-off took a slot of its own
    gaps = [b - a for a, b in pairwise(sorted(slots))]
    assert min(gaps) >= MARGIN / RATE - 1e-6  # unix times: ulp ~2e-7
    assert busiest_second(slots) <= math.ceil(RATE / MARGIN) < RATE
    assert never_ahead_of(slots, [m.at for m in smtp_server.messages])


@pytest.mark.postgres
@pytest.mark.slow
def test_four_worker_processes_on_postgres_send_each_once_and_never_ahead_of_the_rate(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    """Four `drip dispatch` processes share the pace through the database. Their slots stay
    inside them, so the sink's arrivals are held to what the slots imply (see
    `never_ahead_of_the_pace`); the busiest second at the sink is not asserted: on a loaded
    host a process stalled after its slot delivers late, into a later second."""
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
        "DRIP_SEND_RATE": str(RATE),
        "DRIP_BATCH_SIZE": "50",
        "DRIP_SMTP_CONNECTIONS": "2",
        "DRIP_ALLOW_UNSAFE_SENDING": "true",
        "DRIP_POSTAL_ADDRESS": "1 Test Street",
    }
    start = time.time()
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
    assert never_ahead_of_the_pace(start, RATE, times)
    assert max(times) - start >= 399 * MARGIN / RATE  # 400 messages: at least 22.9 s
