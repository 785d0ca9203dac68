"""The last check of a reader's address gives email_validator's verdict, however it gets it."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from drip.mail.handoff import recipient_problem

DOMAINS = [
    "example.org",
    "EXAMPLE.org",
    "mail.example.co.uk",
    "example",
    "localhost",
    "example.test",
    "example.local",
    "invalid",
    "-example.org",
    "example-.org",
    "exa_mple.org",
    "example..org",
    ".example.org",
    "example.org.",
    "example.123",
    "1.2.3.4",
    "xn--bcher-kva.example",
    "XN--bcher-kva.example",
    "xn--zz.example",
    "a" * 63 + ".org",
    "a" * 64 + ".org",
    ("a" * 60 + ".") * 4 + "org",
]
LOCALS = [
    "ada",
    "Ada.Lovelace",
    "o'brien",
    "first.last+tag",
    "a..b",
    ".a",
    "a.",
    "",
    "x" * 64,
    "x" * 65,
    "x" * 200,
    "y" * 241,  # 253 characters at example.org
    "y" * 242,
    "y" * 243,
    "!#$%&'*+-/=?^_`{|}~",
    '"quoted"',
    "a b",
    "a(b)",
    "a@b",
]


def _validator_says(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_verdict_is_email_validators(domain: str) -> None:
    for local in LOCALS:
        address = f"{local}@{domain}"
        for _ in range(2):  # the second time, the domain's verdict is known
            assert (recipient_problem(address) is None) == _validator_says(address), address


def test_the_reason_names_the_address() -> None:
    problem = recipient_problem("a..b@example.org")
    assert problem is not None and "a..b@example.org" in problem
    assert recipient_problem("zoë@example.org") is not None
