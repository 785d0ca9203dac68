"""Transports behind one small interface: an SMTP relay, or the outbox folder by default.

A transport is opened for a batch and reused for every message in it (an SMTP session for
the whole pass: drip.mail.sessions). Its errors say whether trying again later can help
(`transient`: 4xx, refused connection, time-out) or not (5xx for the recipient), and keep
the server's own answer for the operator.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from email.utils import parseaddr
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Protocol, Self
from urllib.parse import unquote, urlsplit

from drip.core.config import Settings
from drip.core.files import private_dir, write_private
from drip.mail import smtp_commands
from drip.mail.handoff import refuse_unless_one_address

log = logging.getLogger(__name__)
STALE_PART_SECONDS = 60  # a `.part` file older than this was left by a write that stopped
THROTTLE_STATUS = re.compile(r"\b4\.7\.\d{1,3}\b|rate|throttl|too many", re.IGNORECASE)


class SendError(Exception):
    """The message was not accepted. `transient`: retry later; `connection`: the relay itself
    is unreachable, so the rest of the batch need not be tried now; `unknown`: the connection
    was lost once the message had gone over DATA, so the relay may have accepted it (SMTP's
    own ambiguity: a retry may be a duplicate, under the same Message-ID)."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        connection: bool = False,
        code: int | None = None,
        charged: bool = True,
        unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.connection = connection
        self.code = code
        self.charged = charged  # False: drip's own side failed, no reader's attempt is used
        self.unknown = unknown

    @property
    def throttled(self) -> bool:
        """The relay asks the sender to slow down (421, 454, or 451 with a 4.7.x status, as
        SES, Gmail and Postfix's rate limits answer): a matter for the whole worker, not for
        this one reader, whose attempt it must not use up."""
        if self.code in (421, 454):
            return True
        return self.code == 451 and bool(THROTTLE_STATUS.search(str(self)))


class Transport(Protocol):
    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def send(self, sender: str, recipient: str, message: bytes, name: str) -> None:
        """Hand one message over; `name` is a file-safe id (the outbox uses it)."""


class OutboxTransport:
    """Writes each message as an .eml file: the embedded default, readable in any mail app.

    A disk that is full or read-only is the outbox's outage, as an unreachable relay is
    SMTP's: the message is retried later, no reader's attempt is used, and no half-written
    `.part` file stays behind."""

    swept: ClassVar[set[Path]] = set()  # folders whose stale `.part` files this process removed

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._unusable: OSError | None = None

    def __enter__(self) -> Self:
        try:
            private_dir(self.folder)
        except OSError as error:
            self._unusable = error
            return self
        if self.folder not in OutboxTransport.swept:
            OutboxTransport.swept.add(self.folder)
            sweep_parts(self.folder)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def send(self, sender: str, recipient: str, message: bytes, name: str) -> None:
        final = self.folder / f"{name}.eml"
        partial = self.folder / f".{name}.eml.part"
        try:
            if self._unusable is not None:
                raise self._unusable
            write_private(partial, message)  # 0600: it holds the reader's live unsubscribe link
            os.replace(partial, final)  # a reader of the folder never sees half a message
        except OSError as error:
            with suppress(OSError):
                partial.unlink(missing_ok=True)
            raise SendError(
                f"the outbox {self.folder} cannot be written ({error.strerror or error}); "
                "drip tries again later",
                transient=True,
                connection=True,
                charged=False,
            ) from error


def sweep_parts(folder: Path) -> int:
    """Remove the `.part` files a process that stopped mid-write left in the outbox (older
    than a minute: a message being written now is never touched); how many were removed."""
    removed = 0
    cutoff = time.time() - STALE_PART_SECONDS
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(".eml.part") and entry.stat().st_mtime < cutoff:
                    with suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
    except OSError as error:
        log.warning("stale .part files in the outbox %s not removed: %s", folder, error)
    return removed


class SmtpTransport:
    """One connection for a batch; STARTTLS when the server offers it, or implicit TLS."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None
        self._unreachable: SendError | None = None  # what `connect_ahead` met
        # An envelope written behind the last final dot, its answers unread (`opened`).
        self._ahead: tuple[str, str, list[str]] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        try:
            smtp: smtplib.SMTP
            if self.implicit_tls:
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
            # A message's final dot goes in a write of its own, right after the message:
            # Nagle's algorithm would hold it until the relay acknowledged the message,
            # which a relay delaying its ACKs does 40 ms later.
            if smtp.sock is not None:
                smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except smtplib.SMTPAuthenticationError as error:
            raise SendError(
                f"SMTP login refused by {self.host}: {_answer(error)}",
                transient=True,
                connection=True,
                code=error.smtp_code,
            ) from None
        except (OSError, smtplib.SMTPException) as error:
            raise SendError(
                f"cannot reach SMTP server {self.host}:{self.port}: {error}",
                transient=True,
                connection=True,
            ) from None
        return smtp

    def connect(self) -> None:
        """Open the session, if it is not open yet: what it offers (`pipelines`) is known
        from then on. After a `connect_ahead` that failed, the first call raises its error."""
        if self._unreachable is not None:
            unreachable, self._unreachable = self._unreachable, None
            raise unreachable
        if self._smtp is None:
            self._smtp = self._connect()

    def connect_ahead(self) -> None:
        """Open the session before its first message, on a thread of its own while the batch
        is prepared. A failure is kept for that first message's `connect` to raise: the
        relay is tried once, not once here and again there."""
        try:
            self.connect()
        except SendError as error:
            self._unreachable = error

    @property
    def pipelines(self) -> bool:
        """The open session offers PIPELINING (RFC 2920): MAIL FROM, RCPT TO and DATA go
        in one write."""
        return self._smtp is not None and smtp_commands.pipelines(self._smtp)

    def send(self, sender: str, recipient: str, message: bytes, name: str) -> None:
        """The envelope and DATA (one write and one wait where the relay offers PIPELINING),
        then the message."""
        self._open(sender, recipient, len(message), data=True)
        self.body(message)

    def envelope(self, sender: str, recipient: str, size: int, *, data: bool = False) -> None:
        """MAIL FROM and RCPT TO of the next message (and DATA, when `data`), without
        handing it over: a sender may open the next envelope while it records the previous
        outcome, and send `data` (or `stream` and `finish` after DATA; else `reset`, or
        `abandon` after DATA) only once that is done."""
        self._open(sender, recipient, size, data=data)

    def _open(self, sender: str, recipient: str, size: int, *, data: bool) -> None:
        problem = refuse_unless_one_address(recipient)
        if problem is not None:  # smtplib would rewrite it and send somewhere else
            raise SendError(f"{problem}; nothing was sent", transient=False)
        self.connect()
        self._enveloped(
            lambda smtp: smtp_commands.envelope(smtp, sender, recipient, size, data=data),
            recipient,
        )

    def _enveloped(self, step: Callable[[smtplib.SMTP], None], recipient: str) -> None:
        """An envelope's `step` on the session, its errors as SendErrors: nothing was
        handed over."""
        if self._smtp is None:
            raise self._lost(" before the envelope's answers")
        try:
            step(self._smtp)
        except smtplib.SMTPRecipientsRefused as error:
            code, answer = error.recipients.get(recipient, (550, b"refused"))
            raise SendError(
                f"{code} {_text(answer)}", transient=400 <= code < 500, code=code
            ) from None
        except smtplib.SMTPResponseException as error:
            raise self._refused(error.smtp_code, _answer(error)) from None
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as error:
            raise self._lost(f": {error}") from None

    def data(self, message: bytes) -> None:
        """DATA, where a lost connection leaves the outcome unknown: the relay may have
        accepted the message before it went away."""
        self._deliver(lambda smtp: smtp_commands.data(smtp, message))

    def body(self, message: bytes) -> None:
        """The message, after `envelope(..., data=True)` opened DATA."""
        self.stream(message)
        self.finish()

    def stream(self, message: bytes) -> None:
        """The message after DATA's 354, all but its final dot: nothing is handed over
        until `finish` (or `abandon`). A sender streams the next message while the
        database records the previous one."""
        assert self._smtp is not None
        try:
            self._smtp.send(smtp_commands.stuffed(message))
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as error:
            raise self._lost(
                f" before the message's end, so nothing was handed over: {error}"
            ) from None

    def finish(self, ahead: tuple[str, str, int] | None = None) -> None:
        """The final dot of a streamed message: the hand-off, its answer read and judged.
        With `ahead` (the next message's return path, recipient and size), on a relay that
        pipelines, that message's envelope and DATA go in the dot's write, as RFC 2920's
        example (3.1) does: one wait for the relay a message instead of two. Where they
        went (`ahead_written`), `opened` reads their answers, whatever became of this
        message."""
        commands: list[str] = []
        if ahead is not None and self.pipelines and not refuse_unless_one_address(ahead[1]):
            assert self._smtp is not None
            commands = smtp_commands.envelope_commands(self._smtp, *ahead, data=True)
            self._ahead = (ahead[0], ahead[1], commands)
        self._deliver(lambda smtp: smtp_commands.finish(smtp, commands))

    @property
    def ahead_written(self) -> bool:
        """An envelope went behind the last final dot, its answers not read yet."""
        return self._ahead is not None

    def opened(self) -> None:
        """The answers to the envelope `finish` wrote ahead, judged as `envelope` judges
        them: that message's DATA is open, or a SendError says why not."""
        assert self._ahead is not None
        sender, recipient, commands = self._ahead
        self._ahead = None
        self._enveloped(
            lambda smtp: smtp_commands.answered(smtp, commands, sender, recipient), recipient
        )

    def abandon(self) -> None:
        """Drop a message whose DATA is open, without its final dot: the connection is
        closed, and RFC 5321 (3.8) has the relay cancel a transaction cut off so, as if
        by RSET. Nothing was handed over; the next message opens a new session."""
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def _deliver(self, step: Callable[[smtplib.SMTP], tuple[int, bytes]]) -> None:
        """The message handed over by `step`, the relay's answer read and judged."""
        assert self._smtp is not None
        try:
            code, answer = step(self._smtp)
        except smtplib.SMTPResponseException as error:
            raise self._refused(error.smtp_code, _answer(error)) from None
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as error:
            raise self._lost(
                f" during DATA, so the relay may have accepted the message: {error}",
                unknown=True,
            ) from None
        if code != 250:
            raise self._refused(code, _text(answer))

    def _lost(self, when: str, *, unknown: bool = False) -> SendError:
        """The connection went away (`when`: how far the message had got, and why): the
        session is closed, the next message opens a new one, and the relay is down for
        now."""
        self.close()
        return SendError(
            f"connection to {self.host}:{self.port} lost{when}",
            transient=True,
            connection=True,
            unknown=unknown,
        )

    def _refused(self, code: int, answer: str) -> SendError:
        """The relay answered `code` to this message: the session is reset for the next one
        (unless the next envelope went ahead: the answer ended this transaction), and the
        refusal is permanent only for a 5xx."""
        if self._ahead is None:
            self.reset()
        return SendError(f"{code} {answer}", transient=not 500 <= code < 600, code=code)

    def reset(self) -> None:
        """Drop an opened envelope (RSET): nothing was handed over."""
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._smtp.close()
        self._smtp = None


def _text(answer: bytes | str) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer


def _answer(error: smtplib.SMTPResponseException) -> str:
    return _text(error.smtp_error)


class OnFirstSend:
    """A transport opened by its first message: a run with nothing to send (most runs of
    the one-off senders beside the lessons) opens no SMTP connection. Once open, `opened`
    is the transport (the hand-off lane opens envelopes on it ahead). `factory` may lend
    a session kept for the pass (drip.mail.sessions): its `with` gives it back."""

    def __init__(self, factory: Callable[[], AbstractContextManager[Transport]]) -> None:
        self.factory = factory
        self.opened: Transport | None = None
        self._held: AbstractContextManager[Transport] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._held is not None:
            self._held.__exit__(kind, error, tb)

    def send(self, sender: str, recipient: str, message: bytes, name: str) -> None:
        if self.opened is None:
            self._held = self.factory()
            self.opened = self._held.__enter__()
        self.opened.send(sender, recipient, message, name)


def envelope_sender(header_value: str) -> str:
    return parseaddr(header_value)[1]


def transport_from_settings(settings: Settings) -> Transport:
    if settings.smtp_url:
        return SmtpTransport(settings.smtp_url)
    return OutboxTransport(settings.outbox_dir)
