"""A worker whose lease ran out mid-batch (a very slow relay) leaves the readers another worker
has claimed since: each of them gets the lesson once, from the worker that holds them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.dispatch import Outcome, PassReport
from drip.mail.transports import SmtpTransport, Transport
from drip.services import Services, build_services
from drip.store.models import Delivery, DeliveryStatus
from tests.conftest import make_settings
from tests.smtp import AfterHandOff, SmtpServer

READERS = ["one@example.org", "two@example.org", "three@example.org"]
LATER = timedelta(minutes=10)  # well past the 5-minute lease


def services(
    tmp_path: Path,
    url: str,
    server: SmtpServer,
    clock: FrozenClock,
    transport: Callable[[], Transport] | None = None,
) -> Services:
    svc = build_services(make_settings(tmp_path, url, smtp_url=server.url), clock, transport)
    with svc.sessions() as session:
        for address in READERS:
            subscribe(
                session,
                svc.content.library(),
                "tiny",
                address,
                clock(),
                consent=Consent("test", "yes"),
                confirmed=True,
            )
        session.commit()
    return svc


def received(server: SmtpServer) -> Counter[str]:
    return Counter(r for m in server.messages for r in m.recipients)


def all_sent(svc: Services) -> bool:
    with svc.sessions() as session:
        return set(session.scalars(select(Delivery.status))) == {DeliveryStatus.SENT}


def test_worker_leaves_readers_claimed_by_another_after_its_lease_ran_out(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    other: list[PassReport] = []
    holder: list[Services] = []

    def second_worker_takes_over(recipient: str) -> None:
        if recipient == READERS[0] and not holder[1:]:
            holder.append(holder[0])  # once: the second worker sends through this too
            other.append(holder[0].dispatcher("second").run_pass(clock() + LATER))

    svc = services(
        tmp_path,
        backend_url,
        smtp_server,
        clock,
        lambda: AfterHandOff(SmtpTransport(smtp_server.url), second_worker_takes_over),
    )
    holder.append(svc)
    first = svc.dispatcher("first").run_pass(clock())

    assert [o.status for o in first.outcomes] == ["sent", "skipped", "skipped"]
    assert other[0].count("sent") == 3
    # The second worker came while the first one's message to reader one was accepted but
    # not yet recorded: that reader is the documented ambiguous case. The others: once.
    assert received(smtp_server) == {READERS[0]: 2, READERS[1]: 1, READERS[2]: 1}
    assert all_sent(svc)
    svc.engine.dispose()


def test_lease_check_after_a_progress_callback(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = services(tmp_path, backend_url, smtp_server, clock)
    other: list[PassReport] = []

    def progress(outcome: Outcome) -> None:
        if outcome.email == READERS[0]:
            other.append(svc.dispatcher("second").run_pass(clock() + LATER))

    first = svc.dispatcher("first").run_pass(clock(), progress=progress)

    assert [o.status for o in first.outcomes] == ["sent", "skipped", "skipped"]
    assert other[0].count("sent") == 2
    assert received(smtp_server) == {address: 1 for address in READERS}
    assert all_sent(svc)
    svc.engine.dispose()
