"""A body part quoted-printable encoded once per rendered message, so that personalising it
for a reader encodes only the readers' values (see drip.mail.render)."""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping

from drip.mail.tokens import TOKEN

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"
# Printable ASCII but "=" and space: what quoted-printable leaves as it is (a lone "." on a
# line is the one exception, see `value`).
_AS_IS = re.compile(r"[!-<>-~]*")


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


def value(text: str) -> bytes:
    """A reader's value as `_soft_ended(_qp(text))` encodes it. A signed link, a name, an
    address hold no byte to escape: cut into lines of 75 with a soft break after each, as
    `_qp` and `_soft_ended` would, without encoding (tests/mail/test_render_fast_paths.py)."""
    if text == "." or not _AS_IS.fullmatch(text):
        return _soft_ended(_qp(text))
    if len(text) <= 75:
        return text.encode("ascii") + SOFT_BREAK
    raw = text.encode("ascii")
    return b"".join(raw[at : at + 75] + SOFT_BREAK for at in range(0, len(raw), 75))


class EncodedPart:
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
        # The encoded text between the tokens, as one bytes format with a %b for each token:
        # a reader's message is then one formatting, not a join of every piece.
        self._tokens = [piece for piece in self.pieces if isinstance(piece, str)]
        self._format = b"".join(
            piece.replace(b"%", b"%%") if isinstance(piece, bytes) else b"%b"
            for piece in self.pieces
        )

    def _line_break(self) -> None:
        if self.pieces:
            self.pieces.append(CRLF)

    def encode(self, values: Mapping[str, str], done: dict[str, bytes] | None = None) -> bytes:
        """The part for one reader's `values`; `done` keeps each value encoded, so the
        message's other part reuses it (a link is the same in both)."""
        done = {} if done is None else done
        filled = []
        for token in self._tokens:
            text = values.get(token, token)
            encoded = done.get(text)
            if encoded is None:
                encoded = done[text] = value(text)
            filled.append(encoded)
        return self._format % tuple(filled)
