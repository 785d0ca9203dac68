"""A pass opens the SMTP sessions a batch will use while that batch is written ahead
(drip.mail.sessions, `open_ahead`): the relay's greeting, TLS and login no longer stand
between the claim and the batch's first message."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from drip.core.clock import FrozenClock
from drip.dispatch.broadcast_copies import BroadcastCopies
from drip.dispatch.write_ahead import WriteAhead
from tests.bulk import add_due_readers
from tests.dispatch.test_claim_ahead import services
from tests.dispatch.test_copies_ahead import broadcast_to
from tests.smtp import SmtpServer

WORKER = "worker-sessions"


def greeted_first(
    monkeypatch: pytest.MonkeyPatch,
    owner: type,
    name: str,
    greeted: threading.Semaphore,
    count: int,
) -> list[bool]:
    """`owner.name`, a batch's write-ahead, made to wait first for `count` sessions to greet
    the relay (10 s at most); whether they did, batch by batch."""
    seen: list[bool] = []
    write_ahead = getattr(owner, name)

    def waiting(*args: Any, **kwargs: Any) -> Any:
        seen.append(all(greeted.acquire(timeout=10) for _ in range(count)))
        return write_ahead(*args, **kwargs)

    monkeypatch.setattr(owner, name, waiting)
    return seen


def forget_greetings(greeted: threading.Semaphore) -> None:
    while greeted.acquire(timeout=0):
        pass


def test_a_batch_of_lessons_connects_its_sessions_while_it_is_written_ahead(
    tmp_path: Path,
    backend_url: str,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    svc = services(tmp_path, backend_url, smtp_server, clock, smtp_connections=2)
    addresses = add_due_readers(svc.engine, 4, clock())
    seen = greeted_first(monkeypatch, WriteAhead, "prepare", smtp_server.handler.greeted, 2)

    report = svc.dispatcher(WORKER).run_pass(clock())

    assert seen == [True]  # one batch; both of its sessions greeted the relay meanwhile
    assert report.count("sent") == 4
    assert sorted(r for m in smtp_server.messages for r in m.recipients) == sorted(addresses)
    svc.engine.dispose()


def test_a_batch_of_a_broadcasts_copies_connects_its_session_while_it_is_written_ahead(
    tmp_path: Path,
    backend_url: str,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    svc = services(tmp_path, backend_url, smtp_server, clock)
    addresses = broadcast_to(svc, clock, 3)
    forget_greetings(smtp_server.handler.greeted)  # the welcomes' pass
    welcomes = len(smtp_server.messages)
    greeted = smtp_server.handler.greeted
    seen = greeted_first(monkeypatch, BroadcastCopies, "write_ahead", greeted, 1)

    report = svc.dispatcher(WORKER).run_pass(clock())

    assert seen == [True]
    assert report.count("sent") == 3
    copies = smtp_server.messages[welcomes:]
    assert sorted(r for m in copies for r in m.recipients) == sorted(addresses)
    svc.engine.dispose()
