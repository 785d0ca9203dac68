"""A pass's SMTP sessions (drip.mail.sessions): a lane's session is given back for the next
batch, a lane that failed closes its own, and the rest are closed once the pass is over."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from types import TracebackType
from typing import Self

import pytest

from drip.mail.sessions import Sessions
from drip.mail.transports import SendError, SmtpTransport
from tests.smtp import SmtpServer


class Session:
    """A transport that only says whether it was closed, and why."""

    def __init__(self) -> None:
        self.closed_by: type[BaseException] | str | None = "open"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.closed_by = kind

    def send(self, sender: str, recipient: str, message: bytes, name: str) -> None: ...


def opening(opened: list[Session]) -> Sessions:
    """Sessions whose every new session is kept in `opened`."""

    def new() -> Session:
        opened.append(Session())
        return opened[-1]

    return Sessions(new)


def test_a_session_serves_the_next_lane_and_closes_with_the_pass() -> None:
    opened: list[Session] = []
    sessions = opening(opened)
    with sessions() as first:
        pass
    with sessions() as second:
        assert second is first
    assert [s.closed_by for s in opened] == ["open"]
    sessions.close()
    assert [s.closed_by for s in opened] == [None]


class Quitting(Session):
    """A session whose QUIT is answered only once every session of the pass has sent its
    own: closing them one after the other would never get past the first."""

    def __init__(self, everyone: threading.Barrier) -> None:
        super().__init__()
        self.everyone = everyone

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.everyone.wait()
        super().__exit__(kind, error, tb)


def test_the_sessions_of_a_pass_quit_together_not_one_after_the_other() -> None:
    everyone = threading.Barrier(3, timeout=10)
    opened: list[Session] = []

    def new() -> Session:
        opened.append(Quitting(everyone))
        return opened[-1]

    sessions = Sessions(new)
    with sessions(), sessions(), sessions():
        pass
    sessions.close()
    assert [s.closed_by for s in opened] == [None, None, None]


def test_a_lane_that_failed_closes_its_own_session() -> None:
    opened: list[Session] = []
    sessions = opening(opened)
    with pytest.raises(ConnectionError), sessions():
        raise ConnectionError("the database went away")
    assert [s.closed_by for s in opened] == [ConnectionError]
    with sessions() as fresh:
        assert fresh is not opened[0]


def test_sessions_opened_ahead_connect_before_any_lane_asks_and_serve_the_lanes(
    smtp_server: SmtpServer,
) -> None:
    sessions = Sessions(lambda: SmtpTransport(smtp_server.url))
    sessions.open_ahead(2)
    for _ in range(2):  # both greeted the relay, with no lane waiting on them
        assert smtp_server.handler.greeted.acquire(timeout=10)
    sessions.open_ahead(2)  # two are open already: nothing more is opened
    with sessions() as first, sessions() as second:
        assert isinstance(first, SmtpTransport) and isinstance(second, SmtpTransport)
        assert first.pipelines and second.pipelines  # connected: its EHLO was read
        first.send("a@example.org", "b@example.org", b"Subject: hi\r\n\r\nhello\r\n", "m1")
    sessions.close()
    assert not smtp_server.handler.greeted.acquire(timeout=0)
    assert [m.recipients for m in smtp_server.messages] == [["b@example.org"]]


def test_a_relay_that_cannot_be_reached_ahead_is_tried_once_and_says_so_at_first_use() -> None:
    calls: list[socket.socket] = []
    listening = socket.create_server(("127.0.0.1", 0))  # takes each call, hangs up at once
    port = listening.getsockname()[1]

    def hang_up() -> None:
        with suppress(OSError):  # until the listening socket is closed
            while True:
                connection, _ = listening.accept()
                calls.append(connection)
                connection.close()

    hanging_up = threading.Thread(target=hang_up)
    hanging_up.start()
    try:
        sessions = Sessions(lambda: SmtpTransport(f"smtp://127.0.0.1:{port}", timeout=10))
        sessions.open_ahead(1)
        with sessions() as transport:
            assert isinstance(transport, SmtpTransport)
            with pytest.raises(SendError, match="cannot reach SMTP server") as unreachable:
                transport.connect()
            assert len(calls) == 1  # the lane was told what the attempt ahead met
            with pytest.raises(SendError):
                transport.connect()  # a later attempt calls the relay again
            assert len(calls) == 2
        sessions.close()
    finally:
        listening.shutdown(socket.SHUT_RDWR)
        listening.close()
        hanging_up.join(10)
    assert unreachable.value.connection
