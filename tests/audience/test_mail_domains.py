"""A slip of the finger on a common provider is caught; real domains close to one are not."""

from __future__ import annotations

import pytest

from drip.audience.mail_domains import suggestion


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("ada@gmial.com", "ada@gmail.com"),  # two letters swapped
        ("ada@gmail.co", "ada@gmail.com"),  # one left out
        ("ada@hotmaill.com", "ada@hotmail.com"),  # one too many
        ("Ada@HOTMIAL.COM", "Ada@hotmail.com"),  # the local part kept as typed
        ("ada@protonmial.cmo", "ada@protonmail.com"),  # two slips on a long name
        ("ada@yahoo.con", "ada@yahoo.com"),
    ],
)
def test_a_slip_on_a_common_provider_is_offered_its_correction(typed: str, meant: str) -> None:
    assert suggestion(typed) == meant
    assert suggestion(typed) == meant  # the second time from the cache, the same answer


@pytest.mark.parametrize(
    "typed",
    [
        "ada@ymail.com",  # real, one letter from gmail.com
        "ada@mail.com",
        "ada@gmail.com",
        "ada@example.org",
        "ada@gxxxx.com",  # too far from any
        "@gmial.com",  # no local part
    ],
)
def test_real_and_unrelated_domains_are_left_alone(typed: str) -> None:
    assert suggestion(typed) is None
