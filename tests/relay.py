"""A hand-written SMTP relay on loopback that records what each of its reads brought:
commands that arrive in one read were written together by the client (PIPELINING, RFC
2920). It serves one session, and refuses any other."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Self


class Relay:
    """An SMTP relay on loopback that answers from `answers` (by verb, else 250; `end` for
    a message's final dot) and keeps each read it made in command mode (`reads`), in a
    message (`data_reads`), and each message it took (`messages`)."""

    def __init__(self, *, pipelining: bool, answers: dict[str, str] | None = None) -> None:
        self.pipelining = pipelining
        self.answers = {"data": "354 go ahead", **(answers or {})}
        self.reads: list[bytes] = []
        self.data_reads: list[bytes] = []
        self.messages: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"smtp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.thread.join(10)
        self.listener.close()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        self.listener.close()  # one session: a second one is refused at once
        with conn:
            conn.sendall(b"220 relay ESMTP\r\n")
            for verb, line in self._commands(conn):
                answer = self._answer(conn, verb, line)
                conn.sendall(answer.encode() + b"\r\n")
                if verb == "quit":
                    return

    def _commands(self, conn: socket.socket) -> Iterator[tuple[str, bytes]]:
        pending = b""
        while True:
            while b"\r\n" not in pending:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                self.reads.append(chunk)
                pending += chunk
            line, pending = pending.split(b"\r\n", 1)
            yield line.split(b" ", 1)[0].decode().lower(), line
            if line.lower() == b"data" and self.answers["data"].startswith("354"):
                while b"\r\n.\r\n" not in b"\r\n" + pending:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    self.data_reads.append(chunk)
                    pending += chunk
                end = (b"\r\n" + pending).index(b"\r\n.\r\n")
                answer = self.answers.get("end", "250 accepted")
                if answer.startswith("250"):
                    self.messages.append(pending[:end])  # with its last line's CRLF
                pending = pending[end + 3 :]
                conn.sendall(answer.encode() + b"\r\n")

    def _answer(self, conn: socket.socket, verb: str, line: bytes) -> str:
        if verb == "ehlo":
            return "250-relay\r\n250 PIPELINING" if self.pipelining else "250 relay"
        if verb == "quit":
            return "221 bye"
        return self.answers.get(verb, "250 ok")
