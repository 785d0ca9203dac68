"""The overlapped lane (drip.dispatch.lane) opens message N+1's DATA while the database
runs message N's record: if that record fails, N+1 is dropped without its final dot, so
nothing more is handed over, and the session is not left inside a message. Where the relay
pipelines, N+1's envelope goes behind N's final dot: a refusal of N leaves it open."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from drip.dispatch.lane import Landing, overlapped
from drip.mail.transports import SendError, SmtpTransport
from tests.smtp import SmtpServer

READERS = ["first@example.org", "second@example.org", "third@example.org"]


def message(recipient: str) -> bytes:
    return f"From: a@example.org\r\nTo: {recipient}\r\nSubject: hi\r\n\r\nHello.\r\n".encode()


@dataclass
class Ledger:
    """Every reader goes; recording `failing` raises when its answer is read."""

    relay: SmtpTransport
    failing: str
    recorded: list[str] = field(default_factory=list)

    def smtp(self) -> SmtpTransport:
        return self.relay

    def stopped(self) -> bool:
        return False

    def release(self, item: str) -> None:
        raise AssertionError("nothing is released")

    def read(self, item: str) -> str:
        return "send"

    def goes(self, item: str, check: str) -> bool:
        return check == "send"

    def may_open(self, item: str) -> bool:
        return True

    def usual(self, item: str, check: str, following: str | None) -> str | None:
        raise AssertionError("every reader goes")

    def build(self, item: str) -> bytes:
        return message(item)

    def envelope(self, item: str) -> tuple[str, str]:
        return "bounces@example.org", item

    failures: dict[str, int | None] = field(default_factory=dict)

    def failed(self, item: str, error: SendError) -> None:
        self.failures[item] = error.code

    def handed(self, item: str) -> None: ...

    def record(self, item: str, following: str | None) -> Landing[str]:
        def landing() -> tuple[bool, str | None]:
            if item == self.failing:
                raise ConnectionError("the database went away")
            return True, "send"

        return landing

    def landed(self, item: str, recorded: bool) -> None:
        self.recorded.append(item)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-at-a-time"])
def test_a_record_that_fails_stops_the_next_message_before_its_final_dot(
    smtp_server: SmtpServer, pipelining: bool
) -> None:
    smtp_server.handler.pipelining = pipelining
    with SmtpTransport(smtp_server.url) as relay:
        ledger = Ledger(relay, failing=READERS[0])
        with pytest.raises(ConnectionError):
            overlapped(ledger, READERS)
        assert ledger.recorded == []
        assert [m.recipients for m in smtp_server.messages] == [[READERS[0]]]
        # The session goes on with a whole message, not inside the second one's DATA.
        relay.send("bounces@example.org", READERS[2], message(READERS[2]), name="")
    assert [m.recipients for m in smtp_server.messages] == [[READERS[0]], [READERS[2]]]


def test_each_record_lands_before_the_next_final_dot(smtp_server: SmtpServer) -> None:
    with SmtpTransport(smtp_server.url) as relay:
        ledger = Ledger(relay, failing="nobody")
        landed_at_data: list[int] = []
        smtp_server.handler.data_answer = lambda number: landed_at_data.append(len(ledger.recorded))
        overlapped(ledger, READERS)
    assert landed_at_data == [0, 1, 2]
    assert ledger.recorded == READERS


def test_a_refused_message_leaves_the_next_envelope_open_behind_its_dot(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.handler.data_answer = lambda number: (
        "554 5.7.1 looks like spam" if number == 2 else None
    )
    with SmtpTransport(smtp_server.url) as relay:
        ledger = Ledger(relay, failing="nobody")
        overlapped(ledger, READERS)
    assert ledger.failures == {READERS[1]: 554}
    assert ledger.recorded == [READERS[0], READERS[2]]
    assert [m.recipients for m in smtp_server.messages] == [[READERS[0]], [READERS[2]]]


def test_a_recipient_refused_behind_a_dot_fails_alone(smtp_server: SmtpServer) -> None:
    smtp_server.answer(READERS[2], "550 5.1.1 user unknown")
    with SmtpTransport(smtp_server.url) as relay:
        ledger = Ledger(relay, failing="nobody")
        overlapped(ledger, [*READERS, "fourth@example.org"])
    assert ledger.failures == {READERS[2]: 550}
    assert ledger.recorded == [READERS[0], READERS[1], "fourth@example.org"]
    assert [m.recipients for m in smtp_server.messages] == [
        [READERS[0]],
        [READERS[1]],
        ["fourth@example.org"],
    ]
