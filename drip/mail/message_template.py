"""A rendered message (`MessageTemplate`): one lesson version, or any other kind, rendered
for every reader at once, with its headers worked out once; `build()` personalises it for one
`Reader` (their name, their signed links) into the bytes handed to SMTP."""

from __future__ import annotations

import base64
import html
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from drip.content.sequences import Sequence
from drip.mail.footer_links import link_for
from drip.mail.headers import address_header, date_header, fold, header_safe
from drip.mail.links import Links
from drip.mail.quoted_printable import CRLF, EncodedPart
from drip.mail.tokens import OPEN_PIXEL, TOKEN, TRACKED, filled


@dataclass(frozen=True)
class Reader:
    """Everything personalising needs to know about one reader in one sequence."""

    email: str
    first_name: str
    subscriber_id: int
    enrollment_id: int


# The reader a preview or a test send is personalised for: matches no row (ids 0), and its
# links are drip.mail.links.SampleLinks, which lead to a page that says it was a sample.
SAMPLE_READER = Reader(
    email="reader@example.org", first_name="Alex", subscriber_id=0, enrollment_id=0
)


@dataclass
class MessageTemplate:
    """One lesson version rendered for every reader at once; `build()` personalises it."""

    sequence: Sequence
    key: str
    version: str
    subject: str
    html: str
    text: str
    tokens: dict[str, tuple[str, str]]  # token -> (variable, default)
    sender: str
    reply_to: str | None
    list_id: str
    mailto: str
    domain: str
    boundary: str = field(default_factory=lambda: f"=_drip_{secrets.token_hex(12)}")
    tracked: tuple[str, ...] = ()  # where each tracked link leads, by its index

    def __post_init__(self) -> None:
        self._html_part = EncodedPart(self.html)
        self._text_part = EncodedPart(self.text)
        self._subject_tokens = bool(TOKEN.search(self.subject))
        self._static_headers = self._headers_once()
        self._reply_to = fold("Reply-To", header_safe(self.reply_to)) if self.reply_to else b""
        self._mailto = f", <mailto:{self.mailto}?subject=unsubscribe>" if self.mailto else ""
        self._text_opening = (
            f"--{self.boundary}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        self._html_opening = (
            f"\r\n--{self.boundary}\r\n"
            "Content-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        self._closing = f"\r\n--{self.boundary}--\r\n".encode()
        self._alternative_type = (
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"\r\n'.encode()
        )

    def _headers_once(self) -> bytes:
        lines = [fold("From", self.sender)]
        if not self._subject_tokens:
            lines.append(fold("Subject", self.subject))
        lines += [
            b"MIME-Version: 1.0\r\n",
            f"List-Id: {self.list_id}\r\n".encode(),
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        ]
        return b"".join(lines)

    def values(
        self,
        reader: Reader,
        links: Links,
        extra: Mapping[str, str],
        known: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """Each token's value for this reader, as plain text. `known` collects the values
        worked out (each signed link once), so `build()` reuses the unsubscribe link."""
        known = {} if known is None else known
        known["first_name"] = reader.first_name
        known.update(extra)
        result = {}
        for token, (name, default) in self.tokens.items():
            if name not in known:
                if name.startswith(TRACKED):
                    index = int(name.removeprefix(TRACKED))
                    known[name] = links.track_url(
                        reader.enrollment_id, self.key, index, self.tracked[index]
                    )
                elif name == OPEN_PIXEL:
                    known[name] = links.open_url(reader.enrollment_id, self.key)
                else:
                    known[name] = link_for(name, reader.subscriber_id, reader.enrollment_id, links)
            result[token] = known[name] or default
        return result

    def parts(
        self, reader: Reader, links: Links, extra: Mapping[str, str] | None = None
    ) -> tuple[str, str, str]:
        """(subject, html, text) as the reader sees them: for previews and tests."""
        values = self.values(reader, links, extra or {})
        escaped = {k: html.escape(v) for k, v in values.items()}
        return (filled(self.subject, values), filled(self.html, escaped), filled(self.text, values))

    def build(
        self,
        reader: Reader,
        links: Links,
        message_id: str,
        now: datetime,
        extra: Mapping[str, str] | None = None,
        attachments: tuple[tuple[str, bytes], ...] = (),
    ) -> bytes:
        """The whole message as bytes with CRLF line ends, ready for SMTP or the outbox."""
        known: dict[str, str] = {}
        values = self.values(reader, links, extra or {}, known)
        escaped = {k: html.escape(v) for k, v in values.items()}
        unsubscribe_url = known.get("unsubscribe_url") or links.unsubscribe_url(
            reader.enrollment_id
        )
        headers = [
            self._static_headers,
            links.reply_to(message_id, self._reply_to),  # signed (drip.mail.reply_address) or plain
            address_header("To", header_safe(reader.first_name), reader.email),
            date_header(now),
            f"Message-ID: {message_id}\r\nList-Unsubscribe: <{unsubscribe_url}>"
            f"{self._mailto}\r\n".encode(),
        ]
        if self._subject_tokens:
            headers.append(fold("Subject", header_safe(filled(self.subject, values))))
        done: dict[str, bytes] = {}
        alternative = b"".join(
            [
                self._text_opening,
                self._text_part.encode(values, done),
                self._html_opening,
                self._html_part.encode(escaped, done),
                self._closing,
            ]
        )
        if not attachments:
            headers.append(self._alternative_type)
            return b"".join(headers) + CRLF + alternative
        outer = self.boundary + "_m"
        headers.append(f'Content-Type: multipart/mixed; boundary="{outer}"\r\n'.encode())
        body = [
            f"--{outer}\r\n".encode(),
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"\r\n\r\n'.encode(),
            alternative,
        ]
        for filename, data in attachments:
            name = header_safe(filename).replace('"', "")
            body += [
                f"--{outer}\r\n".encode(),
                f'Content-Type: application/pdf; name="{name}"\r\n'.encode(),
                b"Content-Transfer-Encoding: base64\r\n",
                f'Content-Disposition: attachment; filename="{name}"\r\n\r\n'.encode(),
                base64.encodebytes(data).replace(b"\n", CRLF),
            ]
        body.append(f"--{outer}--\r\n".encode())
        return b"".join(headers) + CRLF + b"".join(body)
