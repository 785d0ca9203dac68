"""tests/smtp.py `free_port` under parallel test workers: the port it hands out stays out of
other processes' reach until the test's own server binds it."""

from __future__ import annotations

import socket

import pytest

from tests.smtp import free_port


def test_a_free_port_is_refused_to_a_plain_bind_but_taken_by_a_server() -> None:
    port = free_port()
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))  # what another worker's bind(0) or connect() meets
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
        assert server.getsockname()[1] == port


def test_the_kernel_hands_out_no_free_port_while_it_is_reserved() -> None:
    reserved = {free_port() for _ in range(50)}
    picked = set()
    for _ in range(3000):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            picked.add(sock.getsockname()[1])
    assert not reserved & picked
