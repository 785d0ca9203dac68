"""SMTP sessions kept open for a whole pass, from one batch to the next and from one kind
of message to the next.

Each batch's lanes used to open a session of their own and quit it at the batch's end: the
relay's greeting, EHLO, STARTTLS and its handshake, the login and EHLO again, every 200
messages (every 25 with eight sessions sharing a batch, and once per batch of a broadcast's
copies). Across a network that is several waits for the relay a batch. `Sessions` lends
each lane a session the last batch left open, or opens one, and closes them all once the
pass is over.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from drip.mail.transports import Transport


class Lent:
    """A session lent to one lane: its `with` gives it back rather than closing it, unless
    the lane failed (then it is closed, as its own `with` would)."""

    def __init__(self, sessions: Sessions, transport: Transport) -> None:
        self.sessions, self.transport = sessions, transport

    def __enter__(self) -> Transport:
        return self.transport

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.sessions.give_back(self.transport)
        else:
            self.transport.__exit__(kind, error, tb)


class Sessions:
    """The sessions of one pass; lanes on several threads take and give back at once."""

    def __init__(self, factory: Callable[[], Transport]) -> None:
        self.factory = factory
        self._idle: list[Transport] = []
        self._lock = threading.Lock()

    def __call__(self) -> Lent:
        """A session for one lane: one left open, or a new one (connected on first use)."""
        with self._lock:
            transport = self._idle.pop() if self._idle else None
        return Lent(self, transport or self.factory().__enter__())

    def give_back(self, transport: Transport) -> None:
        with self._lock:
            self._idle.append(transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """The pass is over: every session is closed (QUIT)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for transport in idle:
            transport.__exit__(None, None, None)
