"""A pass waits for the relay once a message where it offers PIPELINING, on both databases:
each final dot carries the next message's envelope and DATA in the same write (RFC 2920's
example, 3.1), and every message still arrives whole. Its batches share one SMTP session."""

from __future__ import annotations

from pathlib import Path

from drip.core.clock import FrozenClock
from drip.dispatch.broadcasts import schedule
from drip.dispatch.outcome import Kind
from drip.services import build_services
from tests.bulk import add_due_readers
from tests.conftest import make_settings
from tests.dispatch.test_one_way import NINE_IN_NEW_YORK, news
from tests.relay import Relay

READERS = 5


def test_each_final_dot_carries_the_next_envelope(
    tmp_path: Path, backend_url: str, clock: FrozenClock
) -> None:
    with Relay(pipelining=True) as relay:
        settings = make_settings(tmp_path, backend_url, smtp_url=relay.url)
        svc = build_services(settings, clock=clock)
        try:
            addresses = add_due_readers(svc.engine, READERS, clock())
            report = svc.dispatcher().run_pass(clock())
        finally:
            svc.engine.dispose()
    assert report.count("sent") == READERS
    assert len(relay.messages) == READERS
    behind_a_dot = [read for read in relay.data_reads if b".\r\nmail FROM:" in read]
    assert len(behind_a_dot) == READERS - 1  # every envelope but the first
    recipients = {read.split(b"rcpt TO:<")[1].split(b">")[0].decode() for read in behind_a_dot}
    assert len(recipients) == READERS - 1 and recipients < set(addresses)


def test_a_pass_keeps_its_session_from_one_batch_to_the_next(
    tmp_path: Path, backend_url: str, clock: FrozenClock
) -> None:
    with Relay(pipelining=True) as relay:  # it refuses a second session
        settings = make_settings(tmp_path, backend_url, smtp_url=relay.url, batch_size=2)
        svc = build_services(settings, clock=clock)
        try:
            add_due_readers(svc.engine, READERS, clock())
            report = svc.dispatcher().run_pass(clock())
        finally:
            svc.engine.dispose()
    assert report.count("sent") == READERS
    assert len(relay.messages) == READERS
    assert len([read for read in relay.reads if read.startswith(b"ehlo")]) == 1
    assert relay.reads[-1] == b"quit\r\n"  # closed once the pass was over


def test_a_pass_sends_its_lessons_and_a_broadcast_over_one_session(
    tmp_path: Path, backend_url: str, clock: FrozenClock
) -> None:
    with Relay(pipelining=True) as relay:  # it refuses a second session
        settings = make_settings(tmp_path, backend_url, smtp_url=relay.url, batch_size=2)
        clock.set(NINE_IN_NEW_YORK)  # inside the readers' window for a broadcast
        svc = build_services(settings, clock=clock)
        try:
            add_due_readers(svc.engine, 3, clock())
            with svc.sessions() as session:
                schedule(session, svc.content.library(), news(), clock(), clock())
            report = svc.dispatcher().run_pass(clock())
        finally:
            svc.engine.dispose()
    sent = [o.kind for o in report.outcomes if o.status == "sent"]
    assert sorted(sent) == sorted([Kind.LESSON] * 3 + [Kind.BROADCAST] * 3)
    assert len(relay.messages) == 6
    assert len([read for read in relay.reads if read.startswith(b"ehlo")]) == 1
