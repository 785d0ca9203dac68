"""On PostgreSQL a pass claims each batch of lessons while the one before it is sent, from
its second batch on (drip.dispatch.claim_ahead); a batch claimed ahead that does not get
its turn goes back at once. SQLite claims each batch at its turn."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from drip.core.clock import FrozenClock
from drip.dispatch import Outcome
from drip.services import Services, build_services
from drip.store.models import Delivery, Enrollment, SendingPause
from tests.bulk import add_due_readers
from tests.conftest import courses_beside_tiny, enroll, make_settings
from tests.dispatch.test_caps import course, local
from tests.jobs.test_processes import wait_for
from tests.smtp import SmtpServer

BATCH = 5
WORKER = "worker-ahead"


def in_line(engine: Engine, count: int, now: datetime) -> list[str]:
    """`count` readers due, each a second longer than the next: claimed in id order."""
    addresses = add_due_readers(engine, count, now)
    with engine.begin() as conn:
        for n in range(1, count + 1):
            conn.execute(
                update(Enrollment)
                .where(Enrollment.id == n)
                .values(due_at=now - timedelta(seconds=count + 1 - n))
            )
    return addresses


def services(
    tmp_path: Path, url: str, smtp_server: SmtpServer, clock: FrozenClock, **settings: Any
) -> Services:
    """drip with batches of BATCH readers, sending to `smtp_server`."""
    made = make_settings(tmp_path, url, smtp_url=smtp_server.url, batch_size=BATCH, **settings)
    return build_services(made, clock)


def pause_all_sending(svc: Services, clock: FrozenClock) -> None:
    """A guardrail trips, as drip.deliverability.sending_pause does."""
    with svc.sessions() as session:
        session.add(SendingPause(paused_at=clock(), reason="complaint rate 1%"))
        session.commit()


def leased(engine: Engine, worker: str = WORKER) -> list[int]:
    """The enrollments `worker` holds, by id."""
    with engine.connect() as conn:
        ids = select(Enrollment.id).where(Enrollment.lease_owner == worker)
        return list(conn.scalars(ids.order_by(Enrollment.id)))


def claimed_ahead(engine: Engine, count: int) -> None:
    """Wait (polled, 30 s at most) until `count` readers are leased: the claim ahead runs
    in a thread of its own."""
    wait_for(lambda: len(leased(engine)) == count, 30)


def after_outcomes(
    engine: Engine, count: int, then: Callable[[], None]
) -> Callable[[Outcome], None]:
    """A pass's progress callback: once `count` messages are recorded, and the batch after
    the one under way is claimed ahead (from the pass's second batch on), `then()`."""
    seen: list[Outcome] = []

    def watch(outcome: Outcome) -> None:
        seen.append(outcome)
        if len(seen) == count:
            claimed_ahead(
                engine, (count // BATCH + 2) * BATCH - count
            )  # this batch's rest, the next
            then()

    return watch


def test_from_the_second_batch_on_the_next_is_claimed_while_one_is_sent_and_each_reader_gets_one(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = services(tmp_path, backend_url, smtp_server, clock)
    addresses = in_line(svc.engine, 3 * BATCH + 2, clock())
    postgres = svc.engine.dialect.name == "postgresql"
    while_last: dict[int, list[int]] = {}  # what is leased as each batch's last is recorded

    def watch(outcome: Outcome) -> None:
        if outcome.enrollment_id in (BATCH, 2 * BATCH):
            if postgres and outcome.enrollment_id == 2 * BATCH:
                claimed_ahead(svc.engine, BATCH)
            while_last[outcome.enrollment_id] = leased(svc.engine)

    report = svc.dispatcher(WORKER).run_pass(clock(), progress=watch)

    third = list(range(2 * BATCH + 1, 3 * BATCH + 1))
    assert while_last == {BATCH: [], 2 * BATCH: third if postgres else []}
    assert report.count("sent") == 3 * BATCH + 2
    arrivals = Counter(r for m in smtp_server.messages for r in m.recipients)
    assert arrivals == Counter(addresses)
    assert leased(svc.engine) == []
    svc.engine.dispose()


def test_two_workers_starting_together_take_a_batch_each_before_either_takes_two(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = services(tmp_path, postgres_url, smtp_server, clock)
    in_line(svc.engine, 2 * BATCH, clock())
    second: list[int] = []

    def other_worker_passes(outcome: Outcome) -> None:
        if outcome.enrollment_id == BATCH:  # the first worker's batch is all but done
            other = svc.dispatcher("worker-other").run_pass(clock())
            second.append(other.count("sent"))

    first = svc.dispatcher(WORKER).run_pass(clock(), progress=other_worker_passes)

    assert (first.count("sent"), second) == (BATCH, [BATCH])
    assert leased(svc.engine) == leased(svc.engine, "worker-other") == []
    svc.engine.dispose()


def test_a_batch_claimed_ahead_goes_back_at_once_when_the_relay_goes_down(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = services(tmp_path, postgres_url, smtp_server, clock)
    addresses = in_line(svc.engine, 3 * BATCH, clock())
    relay_dies = after_outcomes(svc.engine, BATCH + 2, smtp_server.stop)

    report = svc.dispatcher(WORKER).run_pass(clock(), progress=relay_dies)

    assert report.count("sent") == BATCH + 2 and report.outcomes[BATCH + 2].relay_down
    ahead = range(2 * BATCH + 1, 3 * BATCH + 1)
    with svc.engine.connect() as conn:
        rows = conn.execute(
            select(Enrollment.id, Enrollment.lease_owner, Enrollment.due_at).where(
                Enrollment.id.in_(ahead)
            )
        ).all()
        written = set(conn.scalars(select(Delivery.enrollment_id)))
    assert [(row.id, row.lease_owner, row.due_at) for row in rows] == [
        (n, None, clock()) for n in ahead
    ]  # due again at once, not when the lease would have run out
    assert written.isdisjoint(ahead)  # nothing written for them: they were not tried

    smtp_server.start()
    clock.advance(hours=1)  # past the second batch's retry
    again = svc.dispatcher(WORKER).run_pass(clock())

    assert again.count("sent") == 2 * BATCH - 2
    arrivals = Counter(r for m in smtp_server.messages for r in m.recipients)
    assert arrivals == Counter(addresses)
    svc.engine.dispose()


def test_a_pause_of_all_sending_meanwhile_stops_the_batch_claimed_ahead(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = services(tmp_path, postgres_url, smtp_server, clock)
    in_line(svc.engine, 3 * BATCH, clock())
    trips = after_outcomes(svc.engine, BATCH + 1, lambda: pause_all_sending(svc, clock))

    report = svc.dispatcher(WORKER).run_pass(clock(), progress=trips)

    assert report.count("sent") == 2 * BATCH  # the batch under way goes on, as before
    assert len(smtp_server.messages) == 2 * BATCH
    with svc.engine.connect() as conn:
        back = conn.execute(
            select(Enrollment.lease_owner, Enrollment.due_at).where(Enrollment.id > 2 * BATCH)
        ).all()
    assert set(back) == {(None, clock())}
    svc.engine.dispose()


def test_a_batch_claimed_ahead_counts_what_the_batch_before_it_handed_its_readers(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    """Ada's two courses fall in the second and third batches; the third is claimed (and
    her hand-offs read) while the second, hers last, is sent: her cap of one a day still
    holds."""
    courses = courses_beside_tiny(tmp_path, {"alpha": course("Alpha"), "beta": course("Beta")})
    svc = services(
        tmp_path, backend_url, smtp_server, clock, sequences_dir=courses, reader_daily_cap=1
    )
    order = [enroll(svc, f"before-{n}@example.org", "alpha") for n in range(BATCH)]
    order += [enroll(svc, f"first-{n}@example.org", "alpha") for n in range(BATCH - 1)]
    order += [enroll(svc, "ada@example.org", slug) for slug in ("alpha", "beta")]
    order += [enroll(svc, f"second-{n}@example.org", "beta") for n in range(BATCH - 1)]
    morning = local(clock(), 9, 30)
    with svc.engine.begin() as conn:
        for place, ident in enumerate(order):
            due = morning - timedelta(seconds=len(order) - place)
            conn.execute(update(Enrollment).where(Enrollment.id == ident).values(due_at=due))
    clock.set(morning)

    report = svc.dispatcher(WORKER).run_pass(clock())

    assert [m.subject for m in smtp_server.to("ada@example.org")] == ["Alpha: one"]
    held = [o.enrollment_id for o in report.outcomes if o.status == "held"]
    assert held == [order[2 * BATCH]]  # her second course, in the third batch
    assert report.count("sent") == 3 * BATCH - 1
    svc.engine.dispose()
