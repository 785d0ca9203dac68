"""A pass's SMTP sessions (drip.mail.sessions): a lane's session is given back for the next
batch, a lane that failed closes its own, and the rest are closed once the pass is over."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

import pytest

from drip.mail.sessions import Sessions


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
