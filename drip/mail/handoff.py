"""The last checks before a message is handed over, shared by every loop that sends.

A row that reached the database past validation (an import bug, a manual SQL fix) or a
message that cannot be built for one reader must cost that one delivery, never the pass,
and never send anything anywhere else: smtplib rewrites what it is given
(`a@example.com,b@example.com` goes to `a@example.com`, `<angle>@example.com` to `angle`,
a CR/LF adds lines to the envelope). So each loop asks `checked_message` for the bytes, and
an `Unsendable` it raises fails that delivery with its reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

log = logging.getLogger(__name__)

# What no single address may hold: a transport refuses it even from a caller that did not
# check (an address list, a route, a header line).
_NOT_ONE_ADDRESS = re.compile(r"[\x00-\x20\x7f,<>()\[\]:;\"\\]")


# A dot-atom before the one "@" (which email_validator always passes) and an ASCII name
# after it (not IDNA's "xn--", whose Unicode form may be longer): see `recipient_problem`.
_ATEXT = r"[A-Za-z0-9_!#$%&'*+\-/=?^`{|}~]+"
_DOT_ATOM_AT = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@(?P<domain>[A-Za-z0-9.-]+)")
_MAX_LENGTH = 254  # email_validator's limit on a whole address


class Unsendable(Exception):
    """This reader's message cannot go out; the message says why, for the operator. Like
    a SendError that trying again cannot help, and no fault of the relay's."""

    transient = False
    connection = False


def recipient_problem(address: str) -> str | None:
    """Why `address` is not one address SMTP can carry as it is, or None. The same parser
    as sign-up (drip.audience.subscriptions.normalize_email) decides."""
    if not address.isascii():
        return f"the address {address!r} is not ASCII: SMTP cannot carry it without SMTPUTF8"
    plain = _DOT_ATOM_AT.fullmatch(address)
    if (
        plain is not None
        and len(address) <= _MAX_LENGTH
        and "xn--" not in plain["domain"].lower()
        and _domain_passes(plain["domain"])
    ):
        # What email_validator checks of such an address is its length and its domain
        # alone: the domain's verdict, kept per domain, spares parsing every reader's
        # address again (tests/mail/test_handoff.py compares the verdicts).
        return None
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        return f"the stored address {address!r} is not one valid address: {error}"
    return None


@lru_cache(maxsize=4096)
def _domain_passes(domain: str) -> bool:
    """Whether email_validator passes an address at `domain` whose part before the "@" it
    passes (a plain one)."""
    try:
        validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def refuse_unless_one_address(address: str) -> str | None:
    """The transports' own cheap guard: why `address` could be read as more than one
    address or add a line, or None."""
    if _NOT_ONE_ADDRESS.search(address) or address.count("@") != 1:
        return f"the address {address!r} is not one plain address"
    return None


def checked_message(address: str, build: Callable[[], bytes]) -> bytes:
    """The message `build` makes for `address`, once the address is checked; raises
    Unsendable with the reason when the address is not one address or building fails."""
    problem = recipient_problem(address)
    if problem is not None:
        raise Unsendable(f"{problem}; nothing was sent")
    try:
        return build()
    except Exception as error:  # whatever one reader's data did: fail that message only
        log.exception("the message for %r could not be built", address)
        reason = " ".join(str(error).split()) or type(error).__name__
        reason = f"the message could not be built for this reader: {reason}"
        raise Unsendable(reason[:1000]) from error
