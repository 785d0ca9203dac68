"""Transports: the SMTP relay (with login) and the outbox; errors say whether to retry."""

from __future__ import annotations

import email
import smtplib
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from drip.mail.smtp_commands import path
from drip.mail.transports import OutboxTransport, SendError, SmtpTransport
from tests.smtp import Handler, SmtpServer, free_port

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


def test_one_connection_serves_a_batch(smtp_server: SmtpServer) -> None:
    with SmtpTransport(smtp_server.url) as transport:
        for n in range(3):
            transport.send("a@example.org", f"r{n}@example.org", MESSAGE, name=str(n))
    assert [m.recipients for m in smtp_server.messages] == [
        ["r0@example.org"],
        ["r1@example.org"],
        ["r2@example.org"],
    ]
    assert len({m.peer for m in smtp_server.messages}) == 1


def test_login_with_credentials_from_the_url() -> None:
    seen: list[tuple[str, str]] = []

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        seen.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"s3cret:/")

    handler = Handler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        with SmtpTransport(f"smtp://drip%40example.org:s3cret%3A%2F@127.0.0.1:{port}") as t:
            t.send("a@example.org", "b@example.org", MESSAGE, name="x")
        assert seen == [("drip@example.org", "s3cret:/")]
        assert len(handler.received) == 1
    finally:
        controller.stop()


def test_refused_connection_is_transient() -> None:
    with pytest.raises(SendError) as error, SmtpTransport(f"smtp://127.0.0.1:{free_port()}") as t:
        t.send("a@example.org", "b@example.org", MESSAGE, name="x")
    assert error.value.transient and error.value.connection
    assert "cannot reach SMTP server 127.0.0.1" in str(error.value)


def test_recipient_answers_are_classified(smtp_server: SmtpServer) -> None:
    smtp_server.answer("later@example.org", "452 4.2.2 mailbox full")
    smtp_server.answer("gone@example.org", "550 5.1.1 user unknown")
    with SmtpTransport(smtp_server.url) as transport:
        with pytest.raises(SendError) as later:
            transport.send("a@example.org", "later@example.org", MESSAGE, name="1")
        with pytest.raises(SendError) as gone:
            transport.send("a@example.org", "gone@example.org", MESSAGE, name="2")
        transport.send("a@example.org", "fine@example.org", MESSAGE, name="3")
    assert (later.value.transient, later.value.code) == (True, 452)
    assert (gone.value.transient, str(gone.value)) == (False, "550 5.1.1 user unknown")
    assert [m.recipients for m in smtp_server.messages] == [["fine@example.org"]]


def test_outbox_writes_whole_eml_files(tmp_path: Path) -> None:
    with OutboxTransport(tmp_path / "outbox") as outbox:
        outbox.send("a@example.org", "b@example.org", MESSAGE, name="20260302-1-welcome")
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == ["20260302-1-welcome.eml"]
    assert email.message_from_bytes(files[0].read_bytes())["Subject"] == "hi"


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.org",
        "bounces+d12.e7.abcdef0123456789@mail.example.co.uk",
        "o'brien@example.org",
        "first.last+tag@example.org",
        "a..b@example.org",
        ".a@example.org",
        "a@b",
        "",
        "<>",
        "Ada <ada@example.org>",
        "ada@example.org (Ada)",
        '"a b"@example.org',
        "zoë@example.org",
    ],
)
def test_envelope_addresses_are_sent_as_smtplib_quotes_them(address: str) -> None:
    assert path(address) == smtplib.quoteaddr(address)


def test_the_envelope_reaches_the_relay_as_given(smtp_server: SmtpServer) -> None:
    with SmtpTransport(smtp_server.url) as relay:
        relay.send("bounces+1@example.org", "o'brien@example.org", b"Subject: x\r\n\r\nhi\r\n", "n")
    (received,) = smtp_server.messages
    assert (received.sender, received.recipients) == (
        "bounces+1@example.org",
        ["o'brien@example.org"],
    )


@pytest.mark.parametrize(
    "body",
    [
        b"plain\r\ntext\r\n",
        b"no line end",
        b".first line\r\nsecond\r\n",
        b"a\r\n.\r\n..two\r\n.three\r\nend",
        b"a\r\n.",
        b".",
        b"...\r\n\r\n.\r\n.a\n.b",
        b"\n.\n.\r\n..\r\n",
    ],
)
def test_data_reaches_the_relay_as_smtplib_sends_it(smtp_server: SmtpServer, body: bytes) -> None:
    message = b"Subject: dots\r\n\r\n" + body
    with smtplib.SMTP("127.0.0.1", smtp_server.port) as smtp:
        smtp.sendmail("a@example.org", ["b@example.org"], message)
    with SmtpTransport(smtp_server.url) as relay:
        relay.send("a@example.org", "b@example.org", message, "n")
    by_smtplib, by_drip = smtp_server.messages
    assert by_drip.raw == by_smtplib.raw
    if b"\n" not in message.replace(b"\r\n", b""):  # every line ends in CRLF: read back whole
        assert by_drip.raw == message + (b"" if message.endswith(b"\r\n") else b"\r\n")
