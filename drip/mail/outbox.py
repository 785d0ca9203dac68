"""The outbox: with no SMTP relay (the embedded default), each message is an .eml file in
one folder, readable in any mail app (written by drip.mail.transports.OutboxTransport). This module
reads that folder: a page at a time, one message, and an erased reader's mail removed."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

SUFFIX = ".eml"


def parse(path: Path, headers_only: bool = False) -> EmailMessage:
    with path.open("rb") as handle:
        return BytesParser(policy=policy.default).parse(handle, headersonly=headers_only)


@dataclass(frozen=True)
class Listing:
    """One page of the outbox, newest first: (file name, headers) and the neighbours'
    cursors (the name to start after or before; None at an end)."""

    messages: list[tuple[str, EmailMessage]]
    total: int
    older: str | None
    newer: str | None


def _files(folder: Path) -> list[tuple[int, str]]:
    """(mtime, name) of every message, newest first: one stat per file, nothing parsed."""
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        found = [
            (e.stat().st_mtime_ns, e.name)
            for e in entries
            if e.name.endswith(SUFFIX) and not e.name.startswith(".") and e.is_file()
        ]
    return sorted(found, reverse=True)


def listing(
    folder: Path, *, after: str = "", before: str = "", last: bool = False, size: int = 100
) -> Listing:
    """A page of messages: the newest, those after (older than) or before (newer than) the
    named file, or the oldest. Only the page's files are parsed (their headers)."""
    files = _files(folder)
    names = [name for _, name in files]
    if last:
        start = max(len(names) - size, 0)
    elif before and before in names:
        start = max(names.index(before) - size, 0)
    elif after and after in names:
        start = names.index(after) + 1
    else:
        start = 0
    chosen = names[start : start + size]
    return Listing(
        [(name, parse(folder / name, headers_only=True)) for name in chosen],
        len(names),
        older=chosen[-1] if chosen and start + size < len(names) else None,
        newer=chosen[0] if chosen and start > 0 else None,
    )


def message_path(folder: Path, name: str) -> Path | None:
    """The file of one message, or None for a name that is not a plain file in the folder."""
    path = folder / name
    if Path(name).name != name or not name.endswith(SUFFIX) or not path.is_file():
        return None
    return path


def bodies(message: EmailMessage) -> tuple[str, str]:
    """(HTML, plain text) of a message as the reader sees them; empty when absent."""
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    return (
        html_part.get_content() if html_part is not None else "",
        text_part.get_content() if text_part is not None else "",
    )


def erase(folder: Path, address: str | Collection[str]) -> int:
    """Remove every message to `address` (an erasure), or to any of several in one look
    through the folder; how many were removed."""
    wanted = {address} if isinstance(address, str) else set(address)
    removed = 0
    if not folder.is_dir() or not wanted:
        return 0
    for path in folder.glob(f"*{SUFFIX}"):
        recipients = {
            a.addr_spec.lower()
            for a in getattr(parse(path, headers_only=True)["To"], "addresses", ())
        }
        if recipients & wanted:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
