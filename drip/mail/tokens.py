"""A message's variables as tokens: each `{{ variable }}` of a rendered message stands as a
token (`DRIPV3Z`) that Markdown, Jinja2 and MJML leave alone, swapped per reader for its value."""

from __future__ import annotations

import re
from collections.abc import Mapping

from drip.content.lessons import VARIABLE

TOKEN = re.compile(r"(DRIPV\d+Z)")
TRACKED = "tracked_link_"  # the variable of the n-th tracked link is tracked_link_<n>
OPEN_PIXEL = "open_pixel"


class Tokeniser:
    """Turns each variable of a message's texts into a token, the same variable (name,
    argument and default) into the same token; `tokens` maps each back to (variable, default)."""

    def __init__(self) -> None:
        self.tokens: dict[str, tuple[str, str]] = {}
        self._by_variable: dict[tuple[str, str], str] = {}

    def __call__(self, text: str) -> str:
        return VARIABLE.sub(self._swap, text)

    def _swap(self, match: re.Match[str]) -> str:
        name = match["name"] + (f":{match['arg']}" if match["arg"] else "")
        variable = (name, match["default"] or "")
        if variable not in self._by_variable:
            self._by_variable[variable] = f"DRIPV{len(self._by_variable)}Z"
            self.tokens[self._by_variable[variable]] = variable
        return self._by_variable[variable]


def filled(text: str, values: Mapping[str, str]) -> str:
    """`text` with each token replaced by its value."""
    return "".join(values.get(piece, piece) for piece in TOKEN.split(text))
