"""SMTP sessions kept open for a whole pass, from one batch to the next and from one kind
of message to the next.

Each batch's lanes used to open a session of their own and quit it at the batch's end: the
relay's greeting, EHLO, STARTTLS and its handshake, the login and EHLO again, every 200
messages (every 25 with eight sessions sharing a batch, and once per batch of a broadcast's
copies). Across a network that is several waits for the relay a batch. `Sessions` lends
each lane a session the last batch left open, or opens one, and `close` quits them all
once the pass is over, all at once: one after the other, eight sessions' QUITs each waited
for the relay's answer in turn, the last of them a whole round trip per session after the
pass's last message.

`open_ahead` connects the sessions a batch is about to need while that batch is still being
written ahead (drip.dispatch.write_ahead): the greeting, TLS and login no longer stand
between the pass's start and its first message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from drip.mail.transports import SmtpTransport, Transport


class Sessions:
    """The sessions of one pass; lanes on several threads take and give back at once."""

    def __init__(self, factory: Callable[[], Transport]) -> None:
        self.factory = factory
        self._idle: list[Transport] = []
        self._opening: list[tuple[Transport, threading.Thread]] = []
        self._lock = threading.Lock()

    def open_ahead(self, count: int) -> None:
        """Start connecting sessions, each on a thread of its own, until `count` are open or
        opening: a lane takes one of them rather than a new one. A session that could not
        connect says so at its first message, as a new one would."""
        with self._lock:
            for _ in range(count - len(self._idle) - len(self._opening)):
                transport = self.factory().__enter__()
                if not isinstance(transport, SmtpTransport):
                    self._idle.append(transport)  # nothing to connect (the outbox)
                    continue
                connecting = threading.Thread(
                    target=transport.connect_ahead, name="smtp-connect", daemon=True
                )
                connecting.start()
                self._opening.append((transport, connecting))

    def _take(self) -> Transport | None:
        """An open session, else one opening (once it has connected or failed to)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if not self._opening:
                return None
            transport, connecting = self._opening.pop(0)
        connecting.join()
        return transport

    @contextmanager
    def __call__(self) -> Iterator[Transport]:
        """A session lent to one lane (one left open or opening, or a new one, connected on
        first use): given back when the lane is done, closed if it failed."""
        transport = self._take() or self.factory().__enter__()
        try:
            yield transport
        except BaseException as error:
            transport.__exit__(type(error), error, error.__traceback__)
            raise
        with self._lock:
            self._idle.append(transport)

    def close(self) -> None:
        """The pass is over: every session is closed (QUIT), each on a thread of its own, so
        that their answers are waited for together."""
        with self._lock:
            idle, self._idle = self._idle, []
            opening, self._opening = self._opening, []
        for transport, connecting in opening:  # opened ahead for a batch that never came
            connecting.join()
            idle.append(transport)
        if not idle:
            return
        with ThreadPoolExecutor(len(idle), thread_name_prefix="smtp-quit") as pool:
            for done in [pool.submit(t.__exit__, None, None, None) for t in idle]:
                done.result()
