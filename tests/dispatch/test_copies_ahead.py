"""On PostgreSQL a broadcast's next batch of copies is claimed while one is sent, from the
pass's second batch on (drip.dispatch.claim_ahead); a batch claimed ahead that does not get
its turn goes back at once, no attempt used. SQLite claims each batch at its turn."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from drip.core.clock import FrozenClock
from drip.dispatch import Outcome
from drip.dispatch.broadcasts import schedule
from drip.services import Services
from drip.store.models import BroadcastRecipient, RecipientStatus
from tests.conftest import enroll
from tests.dispatch.test_claim_ahead import BATCH, pause_all_sending, services
from tests.dispatch.test_one_way import NINE_IN_NEW_YORK, news
from tests.jobs.test_processes import wait_for
from tests.smtp import SmtpServer

WORKER = "worker-copies"


def leased_copies(engine: Engine) -> list[int]:
    """The copies this test's worker holds, by id."""
    with engine.connect() as conn:
        held = select(BroadcastRecipient.id).where(BroadcastRecipient.lease_owner == WORKER)
        return list(conn.scalars(held.order_by(BroadcastRecipient.id)))


def broadcast_to(svc: Services, clock: FrozenClock, readers: int) -> list[str]:
    """`readers` readers of the tiny course, welcomed, then a broadcast due to each."""
    clock.set(NINE_IN_NEW_YORK)  # inside the readers' send window
    addresses = [f"reader{n:02d}@example.org" for n in range(readers)]
    for address in addresses:
        enroll(svc, address)
    svc.dispatcher(WORKER).run_pass(clock())  # the welcomes
    with svc.sessions() as session:
        schedule(session, svc.content.library(), news(), clock(), clock())
    clock.advance(minutes=1)
    return addresses


def copies_in_order(svc: Services) -> list[BroadcastRecipient]:
    """Every copy of the broadcast, in the order they are claimed."""
    with svc.sessions() as session:
        return list(session.scalars(select(BroadcastRecipient).order_by(BroadcastRecipient.id)))


def after_second_batch(svc: Services, then: Callable[[], None]) -> Callable[[Outcome], None]:
    """A pass's progress callback (told a batch's outcomes once it is sent): once the second
    batch of copies is sent and the third claimed ahead meanwhile, `then()`."""
    seen: list[Outcome] = []

    def watch(outcome: Outcome) -> None:
        seen.append(outcome)
        if len(seen) == BATCH + 1:
            wait_for(lambda: len(leased_copies(svc.engine)) == BATCH, 30)
            then()

    return watch


def test_from_the_second_batch_on_the_next_copies_are_claimed_while_one_is_sent(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = services(tmp_path, backend_url, smtp_server, clock)
    addresses = broadcast_to(svc, clock, 3 * BATCH + 2)
    postgres = svc.engine.dialect.name == "postgresql"
    after: list[list[int]] = []  # what is leased once the first, then the second batch is sent
    seen: list[Outcome] = []

    def watch(outcome: Outcome) -> None:
        seen.append(outcome)
        if len(seen) == 1:
            after.append(leased_copies(svc.engine))
        elif len(seen) == BATCH + 1:
            if postgres:
                wait_for(lambda: len(leased_copies(svc.engine)) == BATCH, 30)
            after.append(leased_copies(svc.engine))

    report = svc.dispatcher(WORKER).run_pass(clock(), progress=watch)

    copies = copies_in_order(svc)
    third = [copy.id for copy in copies[2 * BATCH : 3 * BATCH]]
    assert after == [[], third if postgres else []]
    assert report.count("sent") == 3 * BATCH + 2
    arrivals = Counter(r for m in smtp_server.messages if m.subject == "News" for r in m.recipients)
    assert arrivals == Counter(addresses)
    assert {copy.status for copy in copies} == {RecipientStatus.SENT}
    assert leased_copies(svc.engine) == []
    svc.engine.dispose()


def test_copies_claimed_ahead_go_back_at_once_when_the_relay_goes_down(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = services(tmp_path, postgres_url, smtp_server, clock)
    broadcast_to(svc, clock, 4 * BATCH)
    relay_dies = after_second_batch(svc, smtp_server.stop)

    report = svc.dispatcher(WORKER).run_pass(clock(), progress=relay_dies)

    assert report.count("sent") == 2 * BATCH
    copies = copies_in_order(svc)
    third, fourth = copies[2 * BATCH : 3 * BATCH], copies[3 * BATCH :]
    # The third batch had its turn: its first copy met the relay down, the rest were not
    # tried (no attempt used), all due again later.
    assert [(c.status, c.attempts) for c in third] == [(RecipientStatus.RETRYING, 1)] + [
        (RecipientStatus.RETRYING, 0)
    ] * (BATCH - 1)
    # The fourth, claimed while the third was tried, goes back at once, untouched.
    assert [(c.status, c.lease_owner, c.due_at, c.attempts) for c in fourth] == [
        (RecipientStatus.QUEUED, None, clock(), 0)
    ] * BATCH
    assert leased_copies(svc.engine) == []
    svc.engine.dispose()


def test_a_pause_of_all_sending_meanwhile_puts_back_the_copies_claimed_ahead(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = services(tmp_path, postgres_url, smtp_server, clock)
    broadcast_to(svc, clock, 3 * BATCH)
    welcomes = len(smtp_server.messages)
    guardrail_trips = after_second_batch(svc, lambda: pause_all_sending(svc, clock))

    report = svc.dispatcher(WORKER).run_pass(clock(), progress=guardrail_trips)

    assert report.count("sent") == 2 * BATCH
    assert len(smtp_server.messages) == welcomes + 2 * BATCH
    copies = copies_in_order(svc)
    assert [(c.status, c.lease_owner, c.due_at) for c in copies[2 * BATCH :]] == [
        (RecipientStatus.QUEUED, None, clock())
    ] * BATCH
    svc.engine.dispose()
