"""Lesson + reader -> a ready-to-send RFC 5322 message, with the costly work done once.

Markdown, Jinja2 and MJML run once per lesson version, with each variable left as a token
(`DRIPV3Z`). Personalising for a reader then only swaps tokens and quoted-printable encodes
the few lines that hold one; every other line was encoded when the lesson was rendered. That
is what lets one worker keep up with a bare SMTP client (see bench/dispatch.py).
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence as Titles
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from mjml import mjml2html

from drip.content.front_matter import parse_front_matter
from drip.content.sequences import Lesson, Sequence
from drip.core.config import Settings
from drip.core.paths import TEMPLATES as TEMPLATES  # the web layer reads it from here
from drip.mail.footer_links import footer_tokens
from drip.mail.headers import header_safe, list_label, mailbox
from drip.mail.markdown_body import (
    american_quotes,
    body_html,
    markdown_text,
    markdown_to_text,
    track_links,
    with_attachment_note,
    with_blog,
)
from drip.mail.message_template import SAMPLE_READER as SAMPLE_READER
from drip.mail.message_template import MessageTemplate as MessageTemplate
from drip.mail.message_template import Reader as Reader
from drip.mail.tokens import Tokeniser

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
        reason: str = "",
    ) -> MessageTemplate:
        """`track`: a lesson, whose links and opens are tracked where its sequence says so;
        `reason`: the footer's "why you get this" when not the sequence's own (a broadcast's)."""
        tokenise = Tokeniser()
        footer = footer_tokens(tokenise, lesson=track)  # its signed links, per reader
        subject_t, preheader_t, body_t = tokenise(subject), tokenise(preheader), tokenise(body)
        tracked: tuple[str, ...] = ()
        if track and sequence.track_links:  # in both parts: the text's links are tracked too
            body_t, tracked = track_links(body_t, tokenise)
        html_body = body_html(body_t, tokenise, pixel=track and sequence.track_opens)
        button_label, button_url = (button[0], tokenise(button[1])) if button else ("", "")
        context: dict[str, Any] = {
            "subject": subject_t,
            "preheader": preheader_t,
            "preheader_spacer": PREHEADER_SPACER,
            "sequence_title": sequence.title,
            "body_html": html_body,
            "body_text": markdown_to_text(body_t),
            "button_label": button_label,
            "button_url": button_url,
            "reason": reason or signed_up_for([sequence.title], sequence.continues_from),
            **footer,
            "postal_address": self.settings.postal_address,
            "author": sequence.author,
        }
        mjml_source = self.env.get_template("email/layout.mjml.j2").render(context)
        text = self.env.get_template("email/layout.txt.j2").render(context)
        return MessageTemplate(
            sequence=sequence,
            key=key,
            version=f"{version}.{self._layout_version}",
            subject=header_safe(subject_t),
            html=_layout(mjml_source),
            text=html.unescape(text),
            tokens=tokenise.tokens,
            sender=self._sender(sequence),
            reply_to=sequence.reply_to,
            list_id=f"{list_label(sequence.title)} <{sequence.slug}.{self.domain}>",
            mailto=self.settings.unsubscribe_mailto,
            domain=self.domain,
            tracked=tracked,
        )

    def _sender(self, sequence: Sequence) -> str:
        """From: the author's name (they sign) at the sequence's or drip's address."""
        name, address = parseaddr(sequence.sender or self.settings.sender)
        return mailbox(header_safe(sequence.author.name) or name, address)


def _signer_stamp(sequence: Sequence) -> str:
    """What of the sequence's settings a rendered message shows beyond its own file: the
    author (signature, From name) and the sender, so editing them renders afresh."""
    return f"{sequence.author!r}{sequence.sender}"


def signed_up_for(titles: Titles[str], finished: Titles[str] = ()) -> str:
    """The footer's "why you get this": the courses the reader signed up for, each title
    quoted on its own; a course that others continue into says so (`finished`)."""
    reason = f"You are getting this email because you signed up for {_listed(titles, 'and')}"
    if finished:
        reason += f", or because you finished {_listed(finished, 'or')}, which continues into it"
    return american_quotes(reason + ".")


def _listed(titles: Titles[str], word: str) -> str:
    """“A”, “A” and “B”, “A”, “B” and “C”: each title quoted, `word` before the last."""
    quoted = [f"“{title}”" for title in titles]
    if len(quoted) < 3:
        return f" {word} ".join(quoted)
    return f"{', '.join(quoted[:-1])} {word} {quoted[-1]}"
