"""A pass's SMTP sessions (drip.mail.sessions): a lane's session is given back for the next
batch, a lane that failed closes its own, and the rest are closed once the pass is over."""

from __future__ import annotations

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


def test_a_lane_that_failed_closes_its_own_session() -> None:
    opened: list[Session] = []
    sessions = opening(opened)
    with pytest.raises(ConnectionError), sessions():
        raise ConnectionError("the database went away")
    assert [s.closed_by for s in opened] == [ConnectionError]
    with sessions() as fresh:
        assert fresh is not opened[0]
