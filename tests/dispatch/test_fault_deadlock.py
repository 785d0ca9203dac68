"""Four workers on PostgreSQL whose batches mix lessons, retries and completions: the tally
triggers lock their rows in one order for every worker, so no pass fails with a deadlock."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.engine import Connection, Engine

from drip.core.clock import FrozenClock
from drip.services import Services, build_services
from drip.store.db import make_engine
from drip.store.models import Delivery, DeliveryStatus, Enrollment, EnrollmentStatus
from tests.bulk import add_due_readers
from tests.conftest import make_settings
from tests.dispatch.test_concurrency import DRIP, WORKERS, worker_env
from tests.smtp import SmtpServer

READERS = 1_600
LESSONS = ["welcome", "second", "third"]
D = cast(Table, Delivery.__table__)


def mix_lessons(engine: Engine, now: datetime) -> dict[int, str | None]:
    """Give the due readers 0 to 2 lessons already sent, in an order no batch boundary
    lines up with (a few all 3), and to every fifth one a retry of its next lesson
    pending; the lesson each is due for (None: all sent, the pass completes them)."""
    with engine.begin() as conn:
        ids = list(conn.scalars(select(Enrollment.id).order_by(Enrollment.id)))
        rows, due = [], {}
        for n, enrollment in enumerate(ids):
            sent = 3 if n % 97 == 0 else (n * 7 + n // 5) % 3
            due[enrollment] = LESSONS[sent] if sent < 3 else None
            for index in range(sent):
                rows.append(delivery(enrollment, LESSONS[index], DeliveryStatus.SENT, now))
            if sent < 3 and n % 5 == 0:
                rows.append(delivery(enrollment, LESSONS[sent], DeliveryStatus.RETRYING, now))
        conn.execute(insert(D), rows)
    return due


def delivery(
    enrollment: int, lesson: str, status: DeliveryStatus, now: datetime
) -> dict[str, object]:
    sent = status == DeliveryStatus.SENT
    return {
        "enrollment_id": enrollment,
        "lesson": lesson,
        "lesson_version": "v1",
        "status": status,
        "attempts": 1,
        "message_id": f"<{enrollment}.{lesson}@drip.test>",
        "created_at": now - timedelta(days=9),
        "updated_at": now - timedelta(days=9),
        "sent_at": now - timedelta(days=9) if sent else None,
        "last_error": None if sent else "451 try later",
    }


@pytest.mark.slow
@pytest.mark.postgres
def test_four_workers_on_batches_mixing_lessons_never_deadlock(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine = make_engine(postgres_url)
    add_due_readers(engine, READERS, clock())
    due = mix_lessons(engine, clock())
    env = {**worker_env(tmp_path, postgres_url, smtp_server), "DRIP_BATCH_SIZE": "7"}
    command = [DRIP, "dispatch", "--now", clock().isoformat()]
    # Hold the tally row of lesson two's write-aheads until all four workers wait for a
    # lock: their batches then meet at once instead of one after the other.
    holder = hold_tally(engine, "second", "sending")
    workers = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(WORKERS)
    ]
    wait_for(
        lambda: blocked_on_locks(engine) == WORKERS or any(w.poll() is not None for w in workers)
    )
    holder.rollback()
    holder.close()
    outputs = [worker.communicate(timeout=300) for worker in workers]

    failures = [err for worker, (_, err) in zip(workers, outputs, strict=True) if worker.returncode]
    assert not failures, failures[0][-3000:]
    assert not any("deadlock" in out + err for out, err in outputs)
    # Every reader got the lesson they were due, once; the completed ones nothing.
    received = Counter(r for m in smtp_server.messages for r in m.recipients)
    assert sum(received.values()) == sum(1 for lesson in due.values() if lesson)
    assert set(received.values()) == {1}
    with engine.connect() as conn:
        statuses = Counter(conn.scalars(select(Delivery.status)))
        assert set(statuses) == {DeliveryStatus.SENT}
        completed = conn.scalar(
            select(text("count(*)"))
            .select_from(Enrollment)
            .where(Enrollment.status == EnrollmentStatus.COMPLETED)
        )
        # the tallies the triggers kept agree with the rows
        tallies: dict[str, int] = dict(
            conn.execute(
                text("SELECT status, sum(deliveries) FROM delivery_tallies GROUP BY status")
            ).all()
        )
    assert {s: n for s, n in tallies.items() if n} == {
        DeliveryStatus.SENT: statuses[DeliveryStatus.SENT]
    }
    assert completed == sum(1 for lesson in due.values() if lesson in (None, "third"))
    engine.dispose()


def chain(error: BaseException | None) -> list[str]:
    """An error and the ones it was raised while handling (a cleanup can hide the cause)."""
    seen: list[str] = []
    while error is not None and len(seen) < 10:
        seen.append(repr(error)[:300])
        error = error.__cause__ or error.__context__
    return seen


def hold_tally(engine: Engine, lesson: str, status: str) -> Connection:
    """A session holding the lock on one tally row of the tiny course until rolled back."""
    holder = engine.connect()
    holder.execute(
        text(
            "SELECT 1 FROM delivery_tallies WHERE sequence = 'tiny' AND lesson = :lesson "
            "AND status = :status FOR UPDATE"
        ),
        {"lesson": lesson, "status": status},
    )
    return holder


def blocked_on_locks(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            or 0
        )


def wait_for(condition: Callable[[], bool]) -> None:
    """Poll what PostgreSQL shows (a backend waiting on a lock); no clock is slept on."""
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, "the workers never reached the lock"
        time.sleep(0.01)


@pytest.mark.postgres
def test_two_batches_crossing_lessons_and_retries_wait_in_line_instead_of_deadlocking(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    """Worker one's batch writes lesson two ahead and retries lesson three; worker two's
    writes lesson three ahead and retries lesson two. A third session holds the tally row
    of lesson three's retries until both workers are in their write-ahead: taken in the
    order of the rows, each would then wait for the other. Two readers due their welcome
    come last, for whichever worker is free first."""
    engine = make_engine(postgres_url)
    add_due_readers(engine, 6, clock())
    with engine.begin() as conn:
        ids = list(conn.scalars(select(Enrollment.id).order_by(Enrollment.id)))
        claims = [ids[0], ids[1], ids[4], ids[5], ids[2], ids[3]]  # two per batch
        for n, enrollment in enumerate(claims):
            conn.execute(
                update(Enrollment)
                .where(Enrollment.id == enrollment)
                .values(due_at=clock() - timedelta(minutes=10 - n))
            )
        now = clock()
        conn.execute(
            insert(D),
            [
                delivery(ids[0], "welcome", DeliveryStatus.SENT, now),  # due: second, new
                delivery(ids[1], "welcome", DeliveryStatus.SENT, now),
                delivery(ids[1], "second", DeliveryStatus.SENT, now),
                delivery(ids[1], "third", DeliveryStatus.RETRYING, now),  # due: third, again
                # ids[2] and ids[3]: due their welcome, claimed last
                delivery(ids[4], "welcome", DeliveryStatus.SENT, now),
                delivery(ids[4], "second", DeliveryStatus.SENT, now),  # due: third, new
                delivery(ids[5], "welcome", DeliveryStatus.SENT, now),
                delivery(ids[5], "second", DeliveryStatus.RETRYING, now),  # due: second, again
            ],
        )
    settings = make_settings(tmp_path, postgres_url, smtp_url=smtp_server.url, batch_size=2)
    workers = [build_services(settings, clock) for _ in range(2)]
    errors: list[BaseException] = []

    def run(svc: Services, name: str) -> None:
        try:
            svc.dispatcher(name).run_pass(clock())
        except BaseException as error:  # the test reports it below
            errors.append(error)

    holder = hold_tally(engine, "third", "retrying")
    threads = [
        threading.Thread(target=run, args=(svc, f"worker-{n}")) for n, svc in enumerate(workers)
    ]
    threads[0].start()
    wait_for(lambda: blocked_on_locks(engine) == 1)  # worker one, mid write-ahead
    threads[1].start()
    wait_for(lambda: blocked_on_locks(engine) == 2)  # worker two, waiting for a row too
    holder.rollback()
    holder.close()
    for thread in threads:
        thread.join(60)

    assert not errors, " <- ".join(chain(errors[0]))
    received = Counter((r, m.subject) for m in smtp_server.messages for r in m.recipients)
    assert sorted(received.values()) == [1] * 6
    with engine.connect() as conn:
        assert set(conn.scalars(select(Delivery.status))) == {DeliveryStatus.SENT}
    for svc in workers:
        svc.engine.dispose()
    engine.dispose()
