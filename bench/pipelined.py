"""Bare SMTP clients that pipeline as drip's lane does: the ceiling of eight sessions over a
slow relay, with nothing of drip's in it.

Each final dot goes out in one write with the next message's MAIL FROM, RCPT TO and DATA
(RFC 2920's example, 3.1), so each message waits for the relay once, as drip's lane does
(drip.dispatch.lane); unlike drip, a client records nothing and streams the whole message
with its dot. Eight of them in threads of one interpreter, against one, over the same sink,
show what the sink (one asyncio loop) and the interpreter's lock allow; bench/dispatch.py
prints it beside drip's `connections_8_vs_1`.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import BinaryIO

SENDER = b"author@example.org"
LEADING_DOT = re.compile(rb"(?m)^\.")


def _answer(replies: BinaryIO) -> bytes:
    """One reply, all its lines; raises on anything but 2xx or 3xx."""
    while True:
        line = replies.readline()
        if not line or line[:1] not in b"23":
            raise RuntimeError(f"the sink answered {line!r}")
        if line[3:4] != b"-":
            return line


def _envelope(recipient: str) -> bytes:
    return b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (SENDER, recipient.encode())


def _data(message: bytes) -> bytes:
    body = LEADING_DOT.sub(b"..", message)
    return body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n"


def session(port: int, messages: list[tuple[str, bytes]]) -> None:
    """One SMTP session through `messages` (recipient, message), pipelined."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        replies = sock.makefile("rb")
        _answer(replies)
        sock.sendall(b"EHLO bench\r\n")
        _answer(replies)
        if messages:
            sock.sendall(_envelope(messages[0][0]))
            for _ in range(3):
                _answer(replies)
        for index, (_, message) in enumerate(messages):
            following = messages[index + 1][0] if index + 1 < len(messages) else None
            sock.sendall(_data(message) + (_envelope(following) if following else b""))
            for _ in range(4 if following else 1):  # the dot's, then the next envelope's
                _answer(replies)
        sock.sendall(b"QUIT\r\n")
        _answer(replies)


def sessions(port: int, messages: list[tuple[str, bytes]], count: int) -> float:
    """Seconds for `count` sessions at once, in threads, to send `messages` dealt round."""
    shares = [messages[n::count] for n in range(count)]
    threads = [threading.Thread(target=session, args=(port, share)) for share in shares]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start
