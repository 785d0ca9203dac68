"""A message's header lines: text an author or a reader wrote made safe to put in a header,
the From mailbox, the To line (a fast path for plain ASCII), the Date line, the List-Id phrase,
and folding for SMTP with non-ASCII text as RFC 2047 encoded words."""

from __future__ import annotations

import re
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.utils import format_datetime, formataddr
from functools import lru_cache

_UNSAFE_HEADER = re.compile(r"[\x00-\x1f\x7f]")
# An RFC 2047 encoded word as the email package's parser finds one: leniently, with
# whitespace inside it allowed and none needed around it.
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[bBqQ]\?.*?\?=", re.S)
HEADER_TEXT_MAX = 500  # characters of a header's text: a name or subject longer is cut


def header_safe(value: str) -> str:
    """The text a header may carry, checked as a mail reader will read it: encoded words
    decoded (the folder encodes again what needs it), no control character (CR and LF
    above all, so no value can add a header), an encoded word that decodes to one dropped
    whole, at most HEADER_TEXT_MAX characters."""
    text = _UNSAFE_HEADER.sub("", value)
    if "=?" in text:
        text = _without_encoded_words(text)
    return text.strip()[:HEADER_TEXT_MAX].strip()


def _without_encoded_words(text: str) -> str:
    """`text` with each encoded word replaced by its decoded text, or dropped when that
    holds a control character; a word that decodes to another is decoded again."""
    for _ in range(4):
        text, found = _ENCODED_WORD.subn(_decoded_word, text)
        if not found:
            return text
    text = _ENCODED_WORD.sub("", text)  # still markup after four rounds: drop it
    if _read_as_header(text) != text:  # anything else the parser would decode
        text = text.replace("=?", "=")
    return text


def _decoded_word(match: re.Match[str]) -> str:
    decoded = _read_as_header(match[0])
    return "" if _UNSAFE_HEADER.search(decoded) else decoded


def _read_as_header(text: str) -> str:
    """`text` as the header parser of the policy the message is written with decodes it."""
    return str(policy.SMTP.header_factory("Subject", text))


def mailbox(display_name: str, address: str) -> str:
    """`display <address>` whose name folds as RFC 5322 wants it: one quoted string ("Dr.
    Jane Doe") or, when not ASCII, one encoded word, never a phrase half plain, half encoded."""
    display_name = header_safe(display_name)  # a sender's name, as a mail app decodes it
    local, _, domain = address.rpartition("@")
    if not (display_name and local and domain):
        return formataddr((display_name, address), "utf-8")
    return str(Address(display_name, local, domain))


@lru_cache(maxsize=4)
def date_header(now: datetime) -> bytes:
    """`Date:` for `now`: a pass stamps every message with the same instant."""
    return f"Date: {format_datetime(now)}\r\n".encode()


def fold(name: str, value: str) -> bytes:
    """`Name: value` folded for SMTP, non-ASCII text as RFC 2047 encoded words."""
    header = policy.SMTP.header_factory(name, value)
    return str(header.fold(policy=policy.SMTP)).encode("ascii")


_ATEXT_WORDS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+( [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


def address_header(name: str, display_name: str, address: str) -> bytes:
    """`Name: display <address>`. A plain ASCII name and address on one short line need no
    parsing or encoding, so they skip the email package (a large share of building a
    message); anything else goes through `fold`, which gives the same bytes for the plain
    case (tests/mail/test_render_fast_paths.py checks)."""
    if _PLAIN_ADDRESS.fullmatch(address) and (
        not display_name or _ATEXT_WORDS.fullmatch(display_name)
    ):
        line = f"{name}: {display_name} <{address}>" if display_name else f"{name}: {address}"
        if len(line) <= 76:
            return f"{line}\r\n".encode("ascii")
    return fold(name, formataddr((display_name, address), "utf-8"))


def list_label(title: str) -> str:
    """List-Id's phrase: the title, quoted, with what a quoted ASCII string cannot hold removed."""
    label = header_safe(title).replace("\\", "").replace('"', "")
    return '"' + label.encode("ascii", "ignore").decode() + '"'
