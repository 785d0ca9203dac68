"""A real SMTP server on loopback (aiosmtpd) that records what it receives.

Tests read the messages it got, make it answer 4xx or 5xx for chosen recipients, stall a
DATA command or drop the connection right after one, and stop and restart it on the same
port to play an outage. It offers PIPELINING, as production relays do, unless told not to.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from types import TracebackType
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from drip.mail.transports import SmtpTransport


@dataclass
class Received:
    sender: str
    recipients: list[str]
    raw: bytes
    message: EmailMessage
    peer: tuple[str, int]  # the client's address and port: one per SMTP connection
    at: float = field(default_factory=time.time)  # when the server accepted it

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())

    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None
        return str(part.get_content())


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    # recipient -> list of SMTP answers to give at RCPT, used one per attempt
    rcpt_answers: dict[str, list[str]] = field(default_factory=dict)
    # given the number of this DATA command (from 1), an answer other than 250, or None
    data_answer: Callable[[int], str | None] | None = None
    # given the number of this DATA command, True to take the message and then drop the
    # connection without answering (the client cannot know it was accepted)
    drop_after_data: Callable[[int], bool] | None = None
    # given the number of this DATA command, True to leave it unanswered until `unstall`
    # (the message is not taken): a relay that hangs, for the client's time-out
    stall_data: Callable[[int], bool] | None = None
    unstall: threading.Event = field(default_factory=threading.Event)
    data_count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # offer PIPELINING (RFC 2920) after EHLO, as production relays do; False: one command
    # at a time, as aiosmtpd on its own
    pipelining: bool = True
    # released once per EHLO: a test acquires it to know a session has been opened
    greeted: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves it to a handler with this hook
        self.greeted.release()
        if not self.pipelining:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self.lock:
            answers = self.rcpt_answers.get(address)
            if answers:
                return answers.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.data_count += 1
            number = self.data_count
            refusal = self.data_answer(number) if self.data_answer else None
            stall = self.stall_data is not None and self.stall_data(number)
            drop = self.drop_after_data is not None and self.drop_after_data(number)
        if stall:  # wait off the event loop: the server goes on serving other connections
            await asyncio.get_running_loop().run_in_executor(None, self.unstall.wait)
            return "451 4.4.2 gave up waiting"
        if refusal is not None:
            return refusal
        raw = bytes(envelope.original_content or b"")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        with self.lock:
            self.received.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    raw,
                    parsed,
                    tuple(session.peer),  # type: ignore[arg-type]
                )
            )
        if drop:
            transport = server.transport
            assert isinstance(transport, asyncio.Transport)
            transport.abort()  # the reply below goes nowhere
        return "250 Message accepted"


def free_port() -> int:
    """A loopback port nobody else is handed for a minute: the kernel's pick, left in
    TIME_WAIT by one accepted connection, so another test process's bind(0) and outgoing
    connections skip it until a server (every one here sets SO_REUSEADDR) binds it. Parallel
    test workers (pytest-xdist) cannot pick the same port between the pick and the bind."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        address = listener.getsockname()
        with socket.create_connection(address):
            accepted, _ = listener.accept()
            accepted.close()  # the server's side closes first: it is the one in TIME_WAIT
        return int(address[1])


class SmtpServer:
    def __init__(self) -> None:
        self.handler = Handler()
        self.port = free_port()
        self._controller: Controller | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.recipients]

    def answer(self, recipient: str, *answers: str) -> None:
        """Answer RCPT TO for `recipient` with these replies, one per attempt, then 250."""
        with self.handler.lock:
            self.handler.rcpt_answers[recipient] = list(answers)

    def start(self) -> None:
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=True
        )
        self._controller.start()

    def stop(self) -> None:
        self.handler.unstall.set()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class AfterHandOff:
    """The real SMTP transport, running `then(recipient)` once each message is accepted:
    lets a test act between the SMTP hand-off and the dispatcher's record of it."""

    def __init__(self, inner: SmtpTransport, then: Callable[[str], None]) -> None:
        self.inner = inner
        self.then = then

    def __enter__(self) -> Self:
        self.inner.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.inner.__exit__(kind, error, tb)

    def send(self, sender: str, recipient: str, message: bytes, name: str) -> None:
        self.inner.send(sender, recipient, message, name)
        self.then(recipient)
