"""One reply as it arrives, whatever brought it: the reply mailbox's raw message, or a
provider's inbound webhook (drip.replies.inbound), turned into the same `Incoming`.

And what is not a reply at all: an auto-reply (RFC 3834 `Auto-Submitted`, the
`X-Autoreply` family, `Precedence: bulk`, an out-of-office subject) never counts, and a
delivery report (a bounce that reached the reply address) goes to the bounce handling.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

# Where the address a message was sent to shows (the envelope's, then the headers').
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Response")
OUT_OF_OFFICE = re.compile(
    r"^\s*(auto(matic)?[- ]?(reply|response|antwort)|out of (the )?office|abwesenheit|"
    r"r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica|autosvar|"
    r"automatisch antwoord|i am (currently )?(away|out)|away from (the )?office|on vacation)",
    re.IGNORECASE,
)
DAEMONS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon)@", re.IGNORECASE)
QUOTED_START = re.compile(
    r"^(>|On .{0,200}wrote:\s*$|Le .{0,200}a écrit\s*:\s*$|Am .{0,200}schrieb.{0,100}:\s*$|"
    r"-{2,}\s*Original Message\s*-{2,}|_{5,}\s*$|From:\s.+$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Incoming:
    """A reply as drip reads it: who wrote, to which addresses, the subject and text."""

    source: str  # mailbox, postmark, mailgun, ses
    key: str  # unique per message: its Message-ID, else a hash of it
    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    report: bool = False  # a delivery status or complaint report, not a person's answer


def message_key(source: str, message_id: str, *parts: str) -> str:
    """The reply's Message-ID, whichever way it came (the mailbox and a webhook both
    bringing it store it once), or the source and a hash of what identifies it when it
    has none."""
    if message_id.strip():
        return message_id.strip()[:255]
    return f"{source}:{hashlib.sha256(chr(31).join(parts).encode()).hexdigest()}"


def addresses(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(a for _, a in getaddresses([str(v) for v in values]) if "@" in a)


def from_mime(raw: bytes, source: str, envelope: Iterable[str] = ()) -> Incoming:
    """A whole message (the mailbox's, Mailgun's `body-mime`, SES's `content`); `envelope`:
    the recipients the provider says it was delivered to. Never raises on odd mail."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    headers = {k.lower(): str(v) for k, v in message.items()}
    found = [*envelope, *(str(v) for n in RECIPIENT_HEADERS for v in message.get_all(n) or [])]
    return Incoming(
        source=source,
        key=message_key(source, headers.get("message-id", ""), raw.hex()[:4096]),
        sender=parseaddr(headers.get("from", ""))[1] or headers.get("return-path", "").strip("<>"),
        recipients=addresses(found),
        subject=" ".join(headers.get("subject", "").split()),
        body=text_of(message),
        headers=headers,
        report=message.get_content_type() == "multipart/report",
    )


def text_of(message: Message) -> str:
    """The text/plain part, else the HTML part with its tags dropped."""
    if isinstance(message, EmailMessage):
        part = message.get_body(preferencelist=("plain", "html"))
        if part is not None:
            content = part.get_content()
            text = str(content) if part.get_content_subtype() == "plain" else _untag(str(content))
            return text.replace("\r\n", "\n").strip()
    return ""


def _untag(html: str) -> str:
    html = re.sub(r"(?is)<(script|style)\b.*?</\1>", "", html)
    html = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", html)
    return re.sub(r"<[^>]+>", "", html)


def automatic(incoming: Incoming) -> str | None:
    """Why this is an automatic message and no reply, or None for a person's answer."""
    headers = incoming.headers
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto and not auto.startswith("no"):
        return f"Auto-Submitted: {auto}"
    for name in AUTO_HEADERS:
        if name.lower() in headers:
            return f"{name} header"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if OUT_OF_OFFICE.search(incoming.subject):
        return f"out-of-office subject {incoming.subject!r}"
    return None


def is_report(incoming: Incoming) -> bool:
    """A delivery report or a bounce from a mail server, not a person."""
    return incoming.report or bool(DAEMONS.match(incoming.sender)) or not incoming.sender


def split_quoted(body: str) -> tuple[str, str]:
    """(what the reader wrote, the quoted message below it): the admin folds the second."""
    lines = body.splitlines()
    for index, line in enumerate(lines):
        if QUOTED_START.match(line.strip()) and index > 0:
            return "\n".join(lines[:index]).strip(), "\n".join(lines[index:]).strip()
    if lines and lines[0].startswith(">"):
        return "", body.strip()
    return body.strip(), ""
