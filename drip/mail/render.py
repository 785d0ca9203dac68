"""Lesson + reader -> a ready-to-send RFC 5322 message, with the costly work done once.

Markdown, Jinja2 and MJML run once per lesson version, with each variable left as a token
(`DRIPV3Z`). Personalising for a reader then only swaps tokens and quoted-printable encodes
the few lines that hold one; every other line was encoded when the lesson was rendered. That
is what lets one worker keep up with a bare SMTP client (see bench/dispatch.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import markdown
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from mjml import mjml2html

from drip.content.front_matter import parse_front_matter
from drip.content.lessons import BLOG_URL, VARIABLE
from drip.content.sequences import Lesson, Sequence
from drip.core.config import Settings
from drip.core.paths import TEMPLATES as TEMPLATES  # the web layer reads it from here
from drip.mail.footer_links import footer_tokens, link_for
from drip.mail.links import Links

TOKEN = re.compile(r"(DRIPV\d+Z)")
CRLF = b"\r\n"
MARKDOWN_EXTENSIONS = ["extra", "sane_lists", "smarty"]
_UNSAFE_HEADER = re.compile(r"[\x00-\x1f\x7f]")
# After the preheader: invisible characters (combining grapheme joiner, zero-width
# non-joiner, no-break space) that fill the inbox snippet instead of the email's first text.
PREHEADER_SPACER = "&#847;&zwnj;&nbsp;" * 60


class LayoutError(ValueError):
    """The lesson's HTML breaks the MJML layout (a stray MJML tag in its Markdown)."""


def _layout(mjml_source: str) -> str:
    try:
        html_out: str = mjml2html(mjml_source)
    except ValueError as error:
        raise LayoutError(
            f"the lesson's HTML breaks the email layout ({error}): remove MJML tags "
            "(<mj-...>) and unmatched closing tags from the text"
        ) from None
    return html_out


@dataclass(frozen=True)
class Reader:
    """Everything personalising needs to know about one reader in one sequence."""

    email: str
    first_name: str
    subscriber_id: int
    enrollment_id: int


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


def _qp(text: str) -> bytes:
    return binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True).replace(b"\n", CRLF)


def _soft_ended(encoded: bytes) -> bytes:
    """Quoted-printable `encoded` followed by a soft line break ("=" CRLF), no line over 76."""
    head, crlf, last = encoded.rpartition(CRLF)
    out = [head + crlf]
    while len(last) > 75:
        cut = 75
        if last[cut - 1 : cut] == b"=":  # never split an =XX escape
            cut -= 1
        elif last[cut - 2 : cut - 1] == b"=":
            cut -= 2
        out.append(last[:cut] + b"=" + CRLF)
        last = last[cut:]
    out.append(last + b"=" + CRLF)
    return b"".join(out)


class _EncodedPart:
    """A body part, quoted-printable encoded once; per reader only the token values are.

    MJML writes a whole lesson on one line, so encoding each line that holds a token would
    encode the lesson again for every reader. Instead the text around each token is encoded
    once and ends in a soft line break, as does each reader's value: the line then decodes
    to the same text, and every piece is encoded on its own from the start of a line."""

    def __init__(self, text: str) -> None:
        self.pieces: list[bytes | str] = []  # encoded bytes, or a token to encode per reader
        static: list[str] = []

        def flush() -> None:
            if static:
                self._line_break()
                self.pieces.append(_qp("\n".join(static)))
                static.clear()

        for line in text.split("\n"):
            if not TOKEN.search(line):
                static.append(line)
                continue
            flush()
            self._line_break()
            parts = TOKEN.split(line)  # text, token, text, token ..., text
            for index, part in enumerate(parts):
                if index % 2:
                    self.pieces.append(part)
                elif index == len(parts) - 1:
                    self.pieces.append(_qp(part))
                elif part:
                    self.pieces.append(_soft_ended(_qp(part)))
        flush()

    def _line_break(self) -> None:
        if self.pieces:
            self.pieces.append(CRLF)

    def encode(self, values: Mapping[str, str]) -> bytes:
        return b"".join(
            piece if isinstance(piece, bytes) else _soft_ended(_qp(values.get(piece, piece)))
            for piece in self.pieces
        )


_STRONG = re.compile(r"(?<!\\)(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
# One `*` or `_` around a phrase, not inside a word (snake_case), not a list bullet and not
# escaped (`\*` is a literal star).
_EMPHASIS = re.compile(
    r"(?<![\w*\\])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"
    r"|(?<![\w_/\\])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"
)
# Horizontal whitespace only: `\s` would swallow the blank line after the heading.
_HEADING = re.compile(r"^#{1,6}[ \t]*(.+?)[ \t]*#*[ \t]*$", re.M)


# A link the author marks as a button: `[Download the PDF]({{ lead_magnet_url }}){.button}`
# (Python-Markdown's attr_list, part of "extra").
_BUTTON_MARK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)[^)]*\)\{:?[ \t]*\.button[ \t]*\}")
_BUTTON_PARAGRAPH = re.compile(r'<p><a class="button" href="([^"]*)">(.*?)</a></p>')
_BUTTON_INLINE = re.compile(r'<a class="button" href="([^"]*)">')
BUTTON_STYLE = (
    "display:inline-block;padding:12px 22px;font-family:Helvetica, Arial, sans-serif;"
    "font-size:16px;line-height:1.25;color:#ffffff;text-decoration:none;border-radius:4px;"
    "background:#0b5cad"
)


def buttons(body_html: str) -> str:
    """The author's `{.button}` links drawn as the layout's own button (the confirmation
    email's): a table cell with the colour inline, since many mail apps drop <style>."""
    body_html = _BUTTON_PARAGRAPH.sub(
        lambda m: (
            '<table role="presentation" border="0" cellpadding="0" cellspacing="0" '
            'style="margin:20px 0;border-collapse:separate"><tr><td bgcolor="#0b5cad" '
            f'style="border-radius:4px;background:#0b5cad"><a class="button" href="{m[1]}" '
            f'style="{BUTTON_STYLE}">{m[2]}</a></td></tr></table>'
        ),
        body_html,
    )
    return _BUTTON_INLINE.sub(
        lambda m: f'<a class="button" href="{m[1]}" style="{BUTTON_STYLE}">', body_html
    )


def markdown_to_text(source: str) -> str:
    """The text/plain part: the Markdown itself, with links spelled out, emphasis markers
    dropped (a reader sees `**` as noise) and headings in capitals, each on its own
    paragraph."""
    text = _BUTTON_MARK.sub(r"\1: \2", source)
    text = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)[^)]*\)", r"[\1]", text)
    text = re.sub(r"\[([^\]]+)\]\(([^)\s]+)[^)]*\)", r"\1 (\2)", text)
    text = _STRONG.sub(r"\2", text)
    text = _EMPHASIS.sub(lambda m: m[1] or m[2], text)
    text = _HEADING.sub(lambda m: m[1].upper(), text)
    text = html.unescape(re.sub(r"\\([\\`*_{}\[\]()#+!-])", r"\1", text))  # markdown_text
    return re.sub(r"\n{3,}", "\n\n", text).strip()


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
        self._html_part = _EncodedPart(self.html)
        self._text_part = _EncodedPart(self.text)
        self._subject_tokens = bool(TOKEN.search(self.subject))
        self._static_headers = self._headers_once()
        self._reply_to = _fold("Reply-To", header_safe(self.reply_to)) if self.reply_to else b""
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
        lines = [_fold("From", self.sender)]
        if not self._subject_tokens:
            lines.append(_fold("Subject", self.subject))
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
        return (_swap(self.subject, values), _swap(self.html, escaped), _swap(self.text, values))

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
            links.reply_to(message_id, self._reply_to),  # signed (drip.replies.token) or plain
            address_header("To", header_safe(reader.first_name), reader.email),
            _date_header(now),
            f"Message-ID: {message_id}\r\nList-Unsubscribe: <{unsubscribe_url}>"
            f"{self._mailto}\r\n".encode(),
        ]
        if self._subject_tokens:
            headers.append(_fold("Subject", header_safe(_swap(self.subject, values))))
        alternative = b"".join(
            [
                self._text_opening,
                self._text_part.encode(values),
                self._html_opening,
                self._html_part.encode(escaped),
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


def _swap(text: str, values: Mapping[str, str]) -> str:
    return "".join(values.get(piece, piece) for piece in TOKEN.split(text))


_ATEXT_WORDS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+( [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


def address_header(name: str, display_name: str, address: str) -> bytes:
    """`Name: display <address>`. A plain ASCII name and address on one short line need no
    parsing or encoding, so they skip the email package (a large share of building a
    message); anything else goes through `_fold`, which gives the same bytes for the plain
    case (tests/mail/test_render.py checks)."""
    if _PLAIN_ADDRESS.fullmatch(address) and (
        not display_name or _ATEXT_WORDS.fullmatch(display_name)
    ):
        line = f"{name}: {display_name} <{address}>" if display_name else f"{name}: {address}"
        if len(line) <= 76:
            return f"{line}\r\n".encode("ascii")
    return _fold(name, formataddr((display_name, address), "utf-8"))


def mailbox(display_name: str, address: str) -> str:
    """`display <address>` whose name folds as RFC 5322 wants it: one quoted string ("Dr.
    Jane Doe") or, when not ASCII, one encoded word, never a phrase half plain, half encoded."""
    display_name = header_safe(display_name)  # a sender's name, as a mail app decodes it
    local, _, domain = address.rpartition("@")
    if not (display_name and local and domain):
        return formataddr((display_name, address), "utf-8")
    return str(Address(display_name, local, domain))


@lru_cache(maxsize=4)
def _date_header(now: datetime) -> bytes:
    """`Date:` for `now`: a pass stamps every message with the same instant."""
    return f"Date: {format_datetime(now)}\r\n".encode()


def _fold(name: str, value: str) -> bytes:
    """`Name: value` folded for SMTP, non-ASCII text as RFC 2047 encoded words."""
    header = policy.SMTP.header_factory(name, value)
    return str(header.fold(policy=policy.SMTP)).encode("ascii")


TRACKED = "tracked_link_"  # the variable of the n-th tracked link is tracked_link_<n>
OPEN_PIXEL = "open_pixel"
_MARKDOWN_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]+)\]\((?P<url>https?://[^)\s]+)\)")


def _track_links(body: str, tokenise: Any) -> tuple[str, tuple[str, ...]]:
    """Each web link of a lesson's Markdown points at a token that becomes, per reader,
    /l/<token> (drip.mail.links.Links.track_url); returns the body and the original URLs."""
    targets: list[str] = []

    def swap(match: re.Match[str]) -> str:
        targets.append(match["url"])
        return f"[{match['text']}]({tokenise(f'{{{{ {TRACKED}{len(targets) - 1} }}}}')})"

    return _MARKDOWN_LINK.sub(swap, body), tuple(targets)


# The reader a preview or a test send is personalised for: matches no row (ids 0), and its
# links are drip.mail.links.SampleLinks, which lead to a page that says it was a sample.
SAMPLE_READER = Reader(
    email="reader@example.org", first_name="Alex", subscriber_id=0, enrollment_id=0
)

MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!-])")


_OUTSIDE_QUOTE = re.compile(r"”([.,])")
_DOUBLED_MARK = re.compile(r"([.?!])[.,]”")


def american_quotes(text: str) -> str:
    """A period or comma after a closing quote moved inside it (American style); a quoted
    title that ends in its own mark ("Do contacts help?") keeps only that one."""
    return _DOUBLED_MARK.sub(r"\1”", _OUTSIDE_QUOTE.sub(r"\1”", text))


def markdown_text(value: str) -> str:
    """`value` as literal text inside Markdown: no emphasis, no link, no HTML."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(value, quote=False))


def with_blog(text: str, url: str, line: bool = False) -> str:
    """`{{ blog_url }}` as the author's blog (site.yaml's `author.url`); with none set, each
    paragraph that holds it is left out, so no lesson points at a blog it cannot link (in a
    `line`, a subject or preheader, the variable alone is)."""

    def is_blog(match: re.Match[str]) -> bool:
        return match["name"] == BLOG_URL

    if url or line:
        return VARIABLE.sub(lambda m: url if is_blog(m) else m[0], text)
    blocks = text.split("\n\n")
    return "\n\n".join(b for b in blocks if not any(map(is_blog, VARIABLE.finditer(b))))


ATTACHED_NOTE = "The PDF is also attached to this email, so you can save it right away."


def with_attachment_note(body: str) -> str:
    """The welcome's Markdown with a paragraph saying the PDF is attached: after the first
    paragraph that links it, or after the greeting when none does."""
    blocks = body.split("\n\n")
    linking = [i for i, block in enumerate(blocks) if "lead_magnet_url" in block]
    at = linking[0] + 1 if linking else min(1, len(blocks))
    return "\n\n".join([*blocks[:at], ATTACHED_NOTE, *blocks[at:]])


class Renderer:
    """Renders lessons (and system messages such as the confirmation) through the layout."""

    def __init__(self, settings: Settings, templates: Path = TEMPLATES) -> None:
        self.settings = settings
        self.env = Environment(
            loader=FileSystemLoader(templates),
            autoescape=True,
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self._cache: dict[tuple[str, str, str], MessageTemplate] = {}
        self.domain = urlsplit(settings.base_url).hostname or "localhost"
        self._layout_version = hashlib.sha256(
            b"".join(p.read_bytes() for p in sorted((templates / "email").glob("layout.*")))
        ).hexdigest()[:8]

    def lesson(self, sequence: Sequence, lesson: Lesson, attached: bool = False) -> MessageTemplate:
        """`attached`: the welcome that carries the reader's PDF, which then says so."""
        key = (  # what the rendered lesson depends on besides its file: sequence.yaml's say
            sequence.slug,
            lesson.key,
            f"{lesson.version}.{sequence.track_links:d}{sequence.track_opens:d}"
            f".{'|'.join(sequence.continues_from)}.{_signer_stamp(sequence)}"
            f".{sequence.title}|{sequence.sender}|{sequence.reply_to}{'.pdf' * attached}",
        )
        cached = self._cache.get(key)
        if cached is None:
            blog = sequence.author.url
            body = with_blog(with_attachment_note(lesson.body) if attached else lesson.body, blog)
            cached = self.message(
                sequence,
                lesson.key,
                lesson.version,
                with_blog(lesson.subject, blog, line=True),
                with_blog(lesson.preheader, blog, line=True),
                body,
                track=True,
            )
            self._cache[key] = cached
        return cached

    def from_file(
        self,
        sequence: Sequence,
        path: Path,
        key: str,
        fixed: dict[str, str],
        button: tuple[str, str],
    ) -> MessageTemplate:
        """A system message (confirmation, fresh download link) from a Markdown file with
        front matter; `fixed` fills variables that are the same for every reader.

        The values (an author's titles) are put in after the front matter is parsed, as
        text: a quote or markup in a title can neither break the YAML nor become HTML."""
        source = path.read_text(encoding="utf-8")
        version = hashlib.sha256(
            "\0".join([source, *fixed.values(), _signer_stamp(sequence)]).encode()
        ).hexdigest()[:12]
        cache_key = (sequence.slug, key, version)
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        parsed = parse_front_matter(source, path, missing="a message template starts with ---")
        meta, body = parsed.meta, parsed.body
        subject, preheader = str(meta["subject"]), str(meta.get("preheader", ""))
        for name, value in fixed.items():
            placeholder = f"{{{{ {name} }}}}"
            subject = subject.replace(placeholder, value)
            preheader = preheader.replace(placeholder, value)
            body = body.replace(placeholder, markdown_text(value))
        subject, preheader, body = (american_quotes(t) for t in (subject, preheader, body))
        template = self.message(sequence, key, version, subject, preheader, body, button=button)
        self._cache[cache_key] = template
        return template

    def confirmation(self, sequence: Sequence) -> MessageTemplate:
        """The email that asks a new reader to confirm (double opt-in)."""
        return self.from_file(
            sequence,
            TEMPLATES / "email" / "confirm.md",
            "confirm",
            {"sequence_title": sequence.title},
            button=("Yes, send it to me", "{{ confirm_url }}"),
        )

    def offer(self, sequence: Sequence, offered: Sequence) -> MessageTemplate:
        """The one email that offers the next course to a reader who finished this one."""
        return self.from_file(
            sequence,
            TEMPLATES / "email" / "offer.md",
            f"offer-{offered.slug}",
            {
                "sequence_title": sequence.title,
                "offer_title": offered.title,
                "offer_promise": offered.promise,
            },
            button=("Yes, send me that course", "{{ offer_url }}"),
        )

    def magnet_link(self, sequence: Sequence) -> MessageTemplate:
        """A fresh download link for the lead magnet, which the reader asked for."""
        assert sequence.lead_magnet is not None
        return self.from_file(
            sequence,
            TEMPLATES / "public" / "magnet-link.md",
            "magnet-link",
            {"magnet_title": sequence.lead_magnet.title},
            button=("Download the PDF", "{{ lead_magnet_url }}"),
        )

    def message(
        self,
        sequence: Sequence,
        key: str,
        version: str,
        subject: str,
        preheader: str,
        body: str,
        button: tuple[str, str] | None = None,
        track: bool = False,
    ) -> MessageTemplate:
        """`track`: a lesson, whose links and opens are tracked where its sequence says so."""
        tokens: dict[str, tuple[str, str]] = {}
        by_variable: dict[tuple[str, str], str] = {}

        def tokenise(text: str) -> str:
            def swap(match: re.Match[str]) -> str:
                name = match["name"] + (f":{match['arg']}" if match["arg"] else "")
                variable = (name, match["default"] or "")
                if variable not in by_variable:
                    by_variable[variable] = f"DRIPV{len(by_variable)}Z"
                    tokens[by_variable[variable]] = variable
                return by_variable[variable]

            return VARIABLE.sub(swap, text)

        footer = footer_tokens(tokenise, lesson=track)  # its signed links, per reader
        subject_t, preheader_t, body_t = tokenise(subject), tokenise(preheader), tokenise(body)
        tracked: tuple[str, ...] = ()
        if track and sequence.track_links:
            body_t, tracked = _track_links(body_t, tokenise)
        body_html = buttons(markdown.markdown(body_t, extensions=MARKDOWN_EXTENSIONS))
        if track and sequence.track_opens:
            pixel = tokenise(f"{{{{ {OPEN_PIXEL} }}}}")
            body_html += f'<img src="{pixel}" width="1" height="1" alt="" style="display:block">'

        button_label, button_url = (button[0], tokenise(button[1])) if button else ("", "")
        context: dict[str, Any] = {
            "subject": subject_t,
            "preheader": preheader_t,
            "preheader_spacer": PREHEADER_SPACER,
            "sequence_title": sequence.title,
            "body_html": body_html,
            "body_text": markdown_to_text(body_t),
            "button_label": button_label,
            "button_url": button_url,
            "reason": _reason(sequence),
            **footer,
            "postal_address": self.settings.postal_address,
            "author": sequence.author,
        }
        mjml_source = self.env.get_template("email/layout.mjml.j2").render(context)
        text = self.env.get_template("email/layout.txt.j2").render(
            {**context, "body_text": context["body_text"]}
        )
        name, address = parseaddr(sequence.sender or self.settings.sender)
        name = header_safe(sequence.author.name) or name  # the author signs; the address stays
        return MessageTemplate(
            sequence=sequence,
            key=key,
            version=f"{version}.{self._layout_version}",
            subject=header_safe(subject_t),
            html=_layout(mjml_source),
            text=html.unescape(text),
            tokens=tokens,
            sender=mailbox(name, address),
            reply_to=sequence.reply_to,
            list_id=f"{_list_label(sequence.title)} <{sequence.slug}.{self.domain}>",
            mailto=self.settings.unsubscribe_mailto,
            domain=self.domain,
            tracked=tracked,
        )


def _signer_stamp(sequence: Sequence) -> str:
    """What of the sequence's settings a rendered message shows beyond its own file: the
    author (signature, From name) and the sender, so editing them renders afresh."""
    return f"{sequence.author!r}{sequence.sender}"


def _reason(sequence: Sequence) -> str:
    """The footer's "why you get this"; a course that others continue into says so."""
    reason = f"You are getting this email because you signed up for “{sequence.title}”"
    if sequence.continues_from:
        finished = " or ".join(f"“{title}”" for title in sequence.continues_from)
        reason += f", or because you finished {finished}, which continues into it"
    return american_quotes(reason + ".")


def _list_label(title: str) -> str:
    """List-Id's phrase: the title, quoted, with what a quoted ASCII string cannot hold removed."""
    label = header_safe(title).replace("\\", "").replace('"', "")
    return '"' + label.encode("ascii", "ignore").decode() + '"'
