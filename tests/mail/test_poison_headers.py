"""A reader's name is not a header, one reader's message never stops a pass, and a stored
address that is not one address is sent nowhere (issue 17, issue 23's malformed rows).

Names and addresses here are what an attacker or a bad import can put in the database:
encoded words that decode to CR/LF, raw control characters, over-long text, address lists.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from drip.content.sequences import Sequence
from drip.core.clock import FrozenClock
from drip.dispatch.broadcasts import read_broadcast, schedule
from drip.dispatch.fresh_links import request_magnet_link
from drip.mail.headers import HEADER_TEXT_MAX
from drip.mail.render import MessageTemplate, Reader
from drip.ops.stats import overview
from drip.ops.timeline import timeline
from drip.services import Services, build_services
from drip.store.models import (
    BroadcastRecipient,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    RecipientStatus,
    Subscriber,
)
from tests.conftest import enroll, make_settings
from tests.dispatch.test_chaining import library_with
from tests.smtp import SmtpServer

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
INJECTED = "X-Inj"
# Each would add a header, break parsing, or (before the fix) make build() raise.
HOSTILE = [
    "Eve =?utf-8?q?=0D=0AX-Inj=3A_1?=",
    "Eve =?utf-8?b?DQpYLUluajogMQ==?=",  # the same, base64
    "=?UTF-8?Q?=0AX-Inj:_1?=Eve",  # no space around it
    "Evelyn Montgomery-Ashworth the Third =?utf-8?q?=0D=0AX-Inj=3A_1?=",  # folded: raised
    "=?utf-8?q?=3D=3Futf-8=3Fq=3F=3D0D=3D0AX-Inj=3A_1=3F=3D?=",  # decodes to another word
    "Eve\r\nX-Inj: 1",
    "Eve\nX-Inj: 1",
    "Eve\x00\x07 X-Inj",
    "E" * 5000,
    "Zoë =?utf-8?q?=0D=0AX-Inj=3A_1?= Ñúñez",
]
# The headers every lesson of the tiny course carries, each once.
EXPECTED = [
    "From",
    "MIME-Version",
    "List-Id",
    "List-Unsubscribe-Post",
    "To",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "Subject",
    "Content-Type",
]


@pytest.fixture
def tiny(services: Services) -> Sequence:
    sequence = services.content.library().get("tiny")
    assert sequence is not None
    return sequence


def read_back(raw: bytes) -> EmailMessage:
    """The message as a receiver parses it, each header decoded (which raises on an
    address whose decoded name holds CR/LF)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    for name, value in message.items():
        assert "\r" not in str(value) and "\n" not in str(value), (name, value)
        assert "\x00" not in str(value), (name, value)
    return message


def assert_clean(raw: bytes, name: str) -> EmailMessage:
    message = read_back(raw)
    assert sorted(message.keys()) == sorted(EXPECTED), name
    assert INJECTED not in message
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nX-Inj" not in head and b"\nX-Inj" not in head, name
    return message


def test_hostile_first_names_add_no_header_to_the_to_line_or_subject(
    services: Services, tiny: Sequence
) -> None:
    template = services.renderer.lesson(tiny, tiny.lessons[0])  # "Welcome, {{ first_name }}"
    for n, name in enumerate(HOSTILE):
        reader = Reader(f"r{n}@example.org", name, n + 1, n + 1)
        raw = template.build(reader, services.links, f"<m{n}@drip.test>", NOW)
        message = assert_clean(raw, name)
        shown = message["To"].addresses[0].display_name
        assert message["To"].addresses[0].addr_spec == f"r{n}@example.org"
        assert len(shown) <= HEADER_TEXT_MAX
        assert str(message["Subject"]).startswith("Welcome,")
        assert len(str(message["Subject"])) <= HEADER_TEXT_MAX
        if name.startswith("Eve"):  # the bad part dropped, the rest kept
            assert shown.startswith("Eve") and INJECTED not in shown.split("Eve", 1)[0]


def test_an_encoded_word_that_decodes_to_a_line_break_is_dropped_whole(
    services: Services, tiny: Sequence
) -> None:
    template = services.renderer.lesson(tiny, tiny.lessons[0])
    for name in HOSTILE[:2]:
        raw = template.build(Reader("eve@example.org", name, 1, 1), services.links, "<m@t>", NOW)
        message = read_back(raw)
        assert message["To"].addresses[0].display_name == "Eve"
        assert str(message["Subject"]) == "Welcome, Eve"
    zoe = "=?utf-8?q?Zo=C3=AB?="  # a harmless encoded word reads as the mail app shows it
    raw = template.build(Reader("z@example.org", zoe, 1, 1), services.links, "<m@t>", NOW)
    assert read_back(raw)["To"].addresses[0].display_name == "Zoë"


def test_hostile_author_names_and_senders_add_no_header_to_the_from_line(
    services: Services, tiny: Sequence
) -> None:
    # A NUL in the author's name breaks the body's MJML (the signature) before any header:
    # a course that does not render is held with its reason (test_dispatch), not sent.
    for n, name in enumerate(n for n in HOSTILE if "\x00" not in n):
        for sequence in (
            dataclasses.replace(tiny, author=dataclasses.replace(tiny.author, name=name)),
            dataclasses.replace(
                tiny,
                author=dataclasses.replace(tiny.author, name=""),
                sender=f'"{name}" <author@example.org>'.replace("\r", "").replace("\n", ""),
            ),
        ):
            template = services.renderer.lesson(sequence, sequence.lessons[1])
            raw = template.build(
                Reader("ada@example.org", "Ada", 1, 1), services.links, f"<m{n}@t>", NOW
            )
            message = assert_clean(raw, name)
            assert message["From"].addresses[0].addr_spec == "author@example.org"


# -- one message that cannot be built never stops a pass ------------------------------------


@pytest.fixture
def svc(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Services]:
    services = build_services(make_settings(tmp_path, backend_url, smtp_url=smtp_server.url), clock)
    yield services
    services.engine.dispose()


POISONED = "poisoned@example.org"


def fail_to_build_for(monkeypatch: pytest.MonkeyPatch, address: str, kind: str = "") -> None:
    """Make building raise for one reader only (for messages whose key starts with `kind`):
    after the sanitiser no stored name makes build() raise, yet a layout, a lesson or a
    library bug may; the pass must survive it for the others."""
    build = MessageTemplate.build

    def failing(self: MessageTemplate, reader: Reader, *args: Any, **kwargs: Any) -> bytes:
        if reader.email == address and self.key.startswith(kind):
            raise ValueError("invalid arguments; address parts cannot contain CR or LF")
        return build(self, reader, *args, **kwargs)

    monkeypatch.setattr(MessageTemplate, "build", failing)


def fifty_readers(svc: Services) -> list[str]:
    """50 confirmed readers of the tiny course, the third the poisoned one, some with
    hostile names the sanitiser makes safe; their addresses in sign-up order."""
    addresses = [f"r{n:02d}@example.org" for n in range(50)]
    addresses[2] = POISONED
    for n, address in enumerate(addresses):
        enroll(svc, address, first_name=HOSTILE[n % len(HOSTILE)] if n % 7 == 3 else f"R{n}")
    return addresses


def test_one_reader_whose_message_cannot_be_built_fails_alone_and_49_go_out_in_the_pass(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    addresses = fifty_readers(svc)
    fail_to_build_for(monkeypatch, POISONED)

    report = svc.dispatcher().run_pass(clock())

    got = sorted(r for m in smtp_server.messages for r in m.recipients)
    assert got == sorted(a for a in addresses if a != POISONED)
    for received in smtp_server.messages:
        assert_clean(received.raw.replace(b"\n", b"\r\n").replace(b"\r\r", b"\r"), "")
    assert report.count("sent") == 49 and report.count("failed") == 1
    with svc.sessions() as session:
        enrollment = session.scalars(
            select(Enrollment).join(Subscriber).where(Subscriber.email == POISONED)
        ).one()
        delivery = session.scalars(
            select(Delivery).where(Delivery.enrollment_id == enrollment.id)
        ).one()
        assert delivery.status == DeliveryStatus.FAILED
        assert "could not be built" in (delivery.last_error or "")
        assert enrollment.status == EnrollmentStatus.PAUSED
        assert "could not be built" in (enrollment.paused_reason or "")
        entries = timeline(session, enrollment)
        assert any(
            e.kind == "delivery" and e.status == "failed" and "could not be built" in e.detail
            for e in entries
        )
        assert any(e.text == "Not sent" and "could not be built" in e.detail for e in entries)
        assert overview(session, clock(), 60).failed == 1  # the dashboard's "Failed"
    clock.advance(hours=1)
    assert svc.dispatcher().run_pass(clock()).count("failed") == 0  # set aside, not retried


def test_a_broadcast_with_one_unbuildable_message_reaches_the_other_49_in_the_pass(
    svc: Services,
    clock: FrozenClock,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    addresses = fifty_readers(svc)
    svc.dispatcher().run_pass(clock())  # the welcomes
    fail_to_build_for(monkeypatch, POISONED, kind="broadcast")
    path = tmp_path / "news.md"
    path.write_text(
        '---\nsubject: "News for {{ first_name|default(\\"you\\") }}"\nto: [tiny]\n---\n'
        "Hi {{ first_name }}.\n"
    )
    library = svc.content.library()
    with svc.sessions() as session:
        schedule(session, library, read_broadcast(path, library), clock(), clock())
    clock.advance(hours=1)  # into the course's send window

    report = svc.dispatcher().run_pass(clock())

    news = [m for m in smtp_server.messages if m.subject.startswith("News for")]
    assert sorted(r for m in news for r in m.recipients) == sorted(
        a for a in addresses if a != POISONED
    )
    assert all(INJECTED not in m.message for m in news)
    assert (report.broadcasts.sent, report.broadcasts.failed) == (49, 1)
    with svc.sessions() as session:
        row = session.scalars(
            select(BroadcastRecipient).join(Subscriber).where(Subscriber.email == POISONED)
        ).one()
        assert row.status == RecipientStatus.FAILED
        assert "could not be built" in (row.last_error or "")
        enrollment = session.get(Enrollment, row.enrollment_id)
        assert enrollment is not None
        assert any(
            e.text == "Not sent" and "could not be built" in e.detail
            for e in timeline(session, enrollment)
        )


# -- a stored address that is not one address goes nowhere ---------------------------------

MALFORMED = [
    "a@example.com,b@example.com",
    "<angle>@example.com",
    "c@example.com\r\nBcc: victim@example.net",
    "d@example.com>, <victim@example.net",
    "e@example.com\t",  # (PostgreSQL stores no NUL)
]


def test_malformed_stored_addresses_are_failed_and_reach_no_one(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    ids = [enroll(svc, f"bad{n}@example.org") for n in range(len(MALFORMED))]
    enroll(svc, "ada@example.org")
    enroll(svc, "bo@example.org")
    with svc.sessions() as session:  # past validation, as an import bug or a SQL fix would
        for enrollment_id, address in zip(ids, MALFORMED, strict=True):
            enrollment = session.get(Enrollment, enrollment_id)
            assert enrollment is not None
            session.execute(
                update(Subscriber)
                .where(Subscriber.id == enrollment.subscriber_id)
                .values(email=address)
            )
        session.commit()

    report = svc.dispatcher().run_pass(clock())

    assert sorted(r for m in smtp_server.messages for r in m.recipients) == [
        "ada@example.org",
        "bo@example.org",
    ]
    for received in smtp_server.messages:
        head = received.raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        assert b"victim" not in head and b"Bcc" not in head
        assert b"example.com" not in head
    assert report.count("sent") == 2 and report.count("failed") == len(MALFORMED)
    with svc.sessions() as session:
        for enrollment_id, address in zip(ids, MALFORMED, strict=True):
            delivery = session.scalars(
                select(Delivery).where(Delivery.enrollment_id == enrollment_id)
            ).one()
            assert delivery.status == DeliveryStatus.FAILED
            assert repr(address) in (delivery.last_error or "")
            assert "not one valid address" in (delivery.last_error or "")


def test_fresh_links_and_offers_that_cannot_be_built_fail_alone_on_the_timeline(
    tmp_path: Path,
    sqlite_url: str,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = library_with(tmp_path, "on_complete: {offer: next-course}\n")
    settings = make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=folder)
    svc = build_services(settings, clock)
    ids = {address: enroll(svc, address) for address in (POISONED, "ada@example.org")}
    fail_to_build_for(monkeypatch, POISONED, kind="magnet-link")
    with svc.sessions() as session:
        for enrollment_id in ids.values():
            enrollment = session.get(Enrollment, enrollment_id)
            assert enrollment is not None and request_magnet_link(session, enrollment, clock())
        session.commit()
    svc.dispatcher().run_pass(clock())
    fail_to_build_for(monkeypatch, POISONED, kind="offer")
    for _ in range(16):  # eight days: both finish the course and are offered the next
        svc.dispatcher().run_pass(clock())
        clock.advance(hours=12)

    def subjects(address: str) -> list[str]:
        return [m.subject for m in smtp_server.to(address)]

    assert "Your fresh link: Tiny guide" in subjects("ada@example.org")
    assert "What comes after Tiny course" in subjects("ada@example.org")
    assert not {"Your fresh link: Tiny guide", "What comes after Tiny course"} & set(
        subjects(POISONED)
    )
    with svc.sessions() as session:
        enrollment = session.get(Enrollment, ids[POISONED])
        assert enrollment is not None
        failed = {e.kind: e.detail for e in timeline(session, enrollment) if "failed" in e.kind}
        assert "could not be built" in failed["magnet_link_failed"]
        assert "could not be built" in failed["offer_failed"]
    svc.engine.dispose()


def test_a_broadcast_sends_nothing_to_a_malformed_stored_address(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    enroll(svc, "ada@example.org")
    bad = enroll(svc, "bad@example.org")
    svc.dispatcher().run_pass(clock())  # the welcomes, before the row goes bad
    with svc.sessions() as session:
        enrollment = session.get(Enrollment, bad)
        assert enrollment is not None
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == enrollment.subscriber_id)
            .values(email="a@example.com,b@example.com")
        )
        session.commit()
    path = tmp_path / "news.md"
    path.write_text('---\nsubject: "News"\nto: [tiny]\n---\nHi.\n')
    library = svc.content.library()
    with svc.sessions() as session:
        schedule(session, library, read_broadcast(path, library), clock(), clock())
    clock.advance(hours=1)

    report = svc.dispatcher().run_pass(clock())

    news = [m for m in smtp_server.messages if m.subject == "News"]
    assert [m.recipients for m in news] == [["ada@example.org"]]
    assert (report.broadcasts.sent, report.broadcasts.failed) == (1, 1)
    with svc.sessions() as session:
        row = session.scalars(
            select(BroadcastRecipient).where(BroadcastRecipient.enrollment_id == bad)
        ).one()
        assert row.status == RecipientStatus.FAILED
        assert "'a@example.com,b@example.com' is not one valid address" in (row.last_error or "")
