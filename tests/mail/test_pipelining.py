"""PIPELINING (RFC 2920): where the relay offers it, the envelope and DATA go in one write
and one wait; where it does not, one command at a time; a refusal among the pipelined
answers is the same SendError as one at a time, and hands nothing over.

The relay here (tests.relay) records what each of its reads brought."""

from __future__ import annotations

import socket

import pytest

from drip.mail.transports import SendError, SmtpTransport
from tests.relay import Relay
from tests.smtp import SmtpServer

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


def test_the_envelope_and_data_go_in_one_write_where_the_relay_offers_pipelining() -> None:
    with Relay(pipelining=True) as relay, SmtpTransport(relay.url) as transport:
        transport.send("a@example.org", "b@example.org", MESSAGE, name="1")
    assert b"mail FROM:<a@example.org>\r\nrcpt TO:<b@example.org>\r\ndata\r\n" in relay.reads
    assert relay.messages == [MESSAGE]


def test_each_command_waits_for_its_answer_where_the_relay_does_not_offer_pipelining() -> None:
    with Relay(pipelining=False) as relay, SmtpTransport(relay.url) as transport:
        transport.send("a@example.org", "b@example.org", MESSAGE, name="1")
    commands = [read for read in relay.reads if read[:4] in (b"mail", b"rcpt", b"data")]
    assert commands == [
        b"mail FROM:<a@example.org>\r\n",
        b"rcpt TO:<b@example.org>\r\n",
        b"data\r\n",
    ]
    assert relay.messages == [MESSAGE]


def test_an_envelope_opened_ahead_is_one_write_without_data() -> None:
    with Relay(pipelining=True) as relay, SmtpTransport(relay.url) as transport:
        transport.envelope("a@example.org", "b@example.org", len(MESSAGE))
        assert relay.messages == []
        transport.data(MESSAGE)
    assert b"mail FROM:<a@example.org>\r\nrcpt TO:<b@example.org>\r\n" in relay.reads
    assert relay.messages == [MESSAGE]


def test_a_message_streamed_ahead_goes_over_only_with_its_final_dot() -> None:
    with Relay(pipelining=True) as relay, SmtpTransport(relay.url) as transport:
        transport.envelope("a@example.org", "b@example.org", len(MESSAGE), data=True)
        transport.stream(MESSAGE)
        transport.abandon()  # the reader left meanwhile: the session is dropped
    assert relay.messages == []  # RFC 5321 3.8: cut off before the dot, nothing taken
    with Relay(pipelining=True) as relay, SmtpTransport(relay.url) as transport:
        transport.envelope("a@example.org", "b@example.org", len(MESSAGE), data=True)
        transport.stream(b".dotted first line\r\nno CRLF at the end")
        transport.finish()
    assert relay.messages == [b"..dotted first line\r\nno CRLF at the end\r\n"]


@pytest.mark.parametrize("end", ["250 accepted", "554 5.7.1 looks like spam"])
def test_the_next_envelope_goes_behind_a_final_dot_whatever_its_answer(end: str) -> None:
    with Relay(pipelining=True, answers={"end": end}) as relay:
        with SmtpTransport(relay.url) as transport:
            transport.envelope("a@example.org", "b@example.org", len(MESSAGE), data=True)
            transport.stream(MESSAGE)
            try:
                transport.finish(ahead=("a@example.org", "c@example.org", len(MESSAGE)))
            except SendError as refused:
                assert (refused.code, end[:3]) == (554, "554")
            else:
                assert end.startswith("250")
            assert transport.ahead_written
            transport.opened()  # the next message's DATA is open
            transport.stream(MESSAGE)
            relay.answers["end"] = "250 accepted"
            transport.finish()
        wrote = b".\r\nmail FROM:<a@example.org>\r\nrcpt TO:<c@example.org>\r\ndata\r\n"
        assert any(read.endswith(wrote) for read in relay.data_reads)  # one write
        assert not any(read.startswith(b"rset") for read in relay.reads)
    assert len(relay.messages) == (2 if end.startswith("250") else 1)


def test_no_envelope_goes_behind_a_dot_where_the_relay_does_not_pipeline() -> None:
    with Relay(pipelining=False) as relay, SmtpTransport(relay.url) as transport:
        transport.envelope("a@example.org", "b@example.org", len(MESSAGE), data=True)
        transport.stream(MESSAGE)
        transport.finish(ahead=("a@example.org", "c@example.org", len(MESSAGE)))
        assert not transport.ahead_written
        transport.send("a@example.org", "c@example.org", MESSAGE, name="2")
    assert relay.messages == [MESSAGE, MESSAGE]


def test_the_final_dot_is_not_held_back_waiting_for_an_acknowledgement() -> None:
    """The dot goes in a small write of its own after the message: with Nagle's algorithm
    on, it would wait for the relay's delayed ACK (40 ms a message on Linux)."""
    with Relay(pipelining=True) as relay, SmtpTransport(relay.url) as transport:
        transport.send("a@example.org", "b@example.org", MESSAGE, name="1")
        session = transport._smtp
        assert session is not None and session.sock is not None
        assert session.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert relay.messages == [MESSAGE]


@pytest.mark.parametrize(
    ("answers", "code"),
    [
        ({"mail": "451 4.3.0 try later", "rcpt": "503 need MAIL", "data": "503 need RCPT"}, 451),
        ({"rcpt": "550 5.1.1 user unknown", "data": "554 no valid recipients"}, 550),
        ({"data": "452 4.3.1 out of memory"}, 452),
    ],
    ids=["sender-refused", "recipient-refused", "data-refused"],
)
def test_a_refusal_among_pipelined_answers_hands_nothing_over(
    answers: dict[str, str], code: int
) -> None:
    with (
        Relay(pipelining=True, answers=answers) as relay,
        SmtpTransport(relay.url) as transport,
        pytest.raises(SendError) as refused,
    ):
        transport.send("a@example.org", "b@example.org", MESSAGE, name="1")
    assert (refused.value.code, refused.value.transient) == (code, code < 500)
    assert relay.messages == []
    assert any(read.startswith(b"rset") for read in relay.reads)  # the envelope was dropped


def test_a_relay_that_opens_data_after_refusing_the_recipient_gets_a_lone_dot() -> None:
    answers = {"rcpt": "550 5.1.1 user unknown"}  # and DATA's usual 354, wrongly
    with (
        Relay(pipelining=True, answers=answers) as relay,
        SmtpTransport(relay.url) as transport,
        pytest.raises(SendError) as refused,
    ):
        transport.send("a@example.org", "b@example.org", MESSAGE, name="1")
    assert str(refused.value) == "550 5.1.1 user unknown"
    assert relay.messages == [b""]  # RFC 2920 3.1: the dot alone, no message with it


def test_a_batch_over_aiosmtpd_goes_out_with_and_without_pipelining(
    smtp_server: SmtpServer,
) -> None:
    for pipelining in (True, False):
        smtp_server.handler.pipelining = pipelining
        smtp_server.answer("gone@example.org", "550 5.1.1 user unknown")
        with SmtpTransport(smtp_server.url) as transport:
            with pytest.raises(SendError):
                transport.send("a@example.org", "gone@example.org", MESSAGE, name="0")
            for n in (1, 2):
                transport.send("a@example.org", f"r{n}@example.org", MESSAGE, name=str(n))
    assert [m.recipients for m in smtp_server.messages] == [
        ["r1@example.org"],
        ["r2@example.org"],
    ] * 2
