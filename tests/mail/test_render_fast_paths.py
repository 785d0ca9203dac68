"""The shortcuts that make personalising cheap give what the email package would."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.utils import formataddr

import pytest

from drip.content.loader import load_sequences
from drip.core.config import PROJECT_ROOT
from drip.mail.headers import address_header, fold
from drip.mail.quoted_printable import _qp, _soft_ended
from drip.mail.quoted_printable import value as qp_value
from drip.mail.render import Reader
from drip.services import Services

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)

NAMES = [
    "",
    "Ada",
    "Ada Lovelace",
    "O'Brien",
    "Jean-Luc",
    "A" * 40,
    "A" * 90,
    "Zoë",
    "Ada, Countess",
    "Dr. Who",
    'Say "hi"',
    "Ada  Lovelace",
    "x@y",
    "(Ada)",
    "Ada;",
]
ADDRESSES = ["ada@example.org", "first.last+tag@mail.example.co.uk", "o'brien@example.org"]


@pytest.mark.parametrize("address", ADDRESSES)
@pytest.mark.parametrize("name", NAMES)
def test_address_header_matches_the_email_package(name: str, address: str) -> None:
    assert address_header("To", name, address) == fold("To", formataddr((name, address), "utf-8"))


@pytest.mark.parametrize("name", [n for n in NAMES if "  " not in n])
def test_address_header_reads_back_as_the_same_reader(name: str) -> None:
    raw = address_header("To", name, "ada@example.org") + b"\r\n"
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    (address,) = parsed["To"].addresses
    assert (address.display_name, address.addr_spec) == (name.strip(), "ada@example.org")


READERS = ["Ada", "", "A" * 90, "Zoë Ñúñez", "a=b c ", "<b>Tom & Jerry</b>", "x" * 74 + "="]


@pytest.mark.parametrize("first_name", READERS)
def test_encoded_parts_decode_to_the_personalised_lesson(
    services: Services, first_name: str
) -> None:
    tiny = services.content.library().sequences["tiny"]
    real = load_sequences(PROJECT_ROOT / "sequences").sequences["interview-questions"]
    lessons = [(sequence, lesson) for sequence in (tiny, real) for lesson in sequence.lessons]
    reader = Reader("ada@example.org", first_name, 7, 9)
    for sequence, lesson in lessons:
        template = services.renderer.lesson(sequence, lesson)
        raw = template.build(reader, services.links, "<m@drip.test>", NOW)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        _, html, text = template.parts(reader, services.links)
        for kind, expected in (("plain", text), ("html", html)):
            part = message.get_body((kind,))
            assert part is not None
            decoded = part.get_content().replace("\r\n", "\n")
            assert decoded.rstrip("\n") == expected.rstrip("\n"), lesson.key
        body = raw.split(b"\r\n\r\n", 1)[1]
        assert max(len(line) for line in body.split(b"\r\n")) <= 76


AS_IS = "abcXYZ019./:?&_-~!#$%'()*+,;<>@[]^`{|}\""
VALUES = [
    "",
    ".",
    "..",
    ".a",
    "a.",
    "https://drip.example.org/unsubscribe/MQ.abc-DEF_ghi",
    "x" * 74,
    "x" * 75,
    "x" * 76,
    "x" * 150,
    "x" * 151,
    "x" * 75 + ".",
    "x" * 74 + ".",
    "." + "x" * 80,
    "a=b",
    "a b",
    "a ",
    "\tab",
    "Zoë",
    "x" * 80 + "=",
    "x" * 75 + " ",
]


@pytest.mark.parametrize("value", VALUES)
def test_a_value_as_is_encodes_as_quoted_printable_does(value: str) -> None:
    assert qp_value(value) == _soft_ended(_qp(value))


def test_values_of_every_length_and_character_encode_as_quoted_printable_does() -> None:
    for length in range(0, 320):
        for start in range(0, len(AS_IS), 7):
            text = "".join(AS_IS[(start + i * 3) % len(AS_IS)] for i in range(length))
            assert qp_value(text) == _soft_ended(_qp(text)), text
