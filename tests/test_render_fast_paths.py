"""The shortcuts that make personalising cheap give the same bytes as the email package."""

from __future__ import annotations

import email
import email.policy
from email.utils import formataddr

import pytest

from drip.render import _fold, address_header

NAMES = ["", "Ada", "Ada Lovelace", "O'Brien", "Jean-Luc", "A" * 40, "A" * 90, "Zoë",
         "Ada, Countess", "Dr. Who", 'Say "hi"', "Ada  Lovelace", "x@y", "(Ada)", "Ada;"]
ADDRESSES = ["ada@example.org", "first.last+tag@mail.example.co.uk", "o'brien@example.org"]


@pytest.mark.parametrize("address", ADDRESSES)
@pytest.mark.parametrize("name", NAMES)
def test_address_header_matches_the_email_package(name: str, address: str) -> None:
    assert address_header("To", name, address) == _fold("To", formataddr((name, address),
                                                                          "utf-8"))


@pytest.mark.parametrize("name", [n for n in NAMES if "  " not in n])
def test_address_header_reads_back_as_the_same_reader(name: str) -> None:
    raw = address_header("To", name, "ada@example.org") + b"\r\n"
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    (address,) = parsed["To"].addresses
    assert (address.display_name, address.addr_spec) == (name.strip(), "ada@example.org")
