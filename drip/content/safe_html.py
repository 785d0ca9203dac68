"""The HTML a lead magnet may hold: what Markdown writes, and nothing that reaches out.

Markdown passes raw HTML through, and its attribute lists (`{: rel=attachment }`) add any
attribute, so the magnet's HTML is cut down to an allow-list after Markdown: the tags and
attributes below stay, a tag not listed goes (its text stays, except inside the tags whose
content is code or another document: script, style, svg...), an attribute not listed goes.
Nothing left can ask WeasyPrint to embed a file (`rel="attachment"`, `<link>`, `<object>`)
or fetch a style sheet (`<style>`, `style="..."` beyond text alignment); the one fetch left,
`<img src>`, goes through drip.content.fetch_rule. `clean` also says what it removed, so `drip
check` can name it at its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser

TAGS = frozenset(
    {
        *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code"),
        *("ul", "ol", "li", "dl", "dt", "dd", "div", "span", "a", "img", "figure", "figcaption"),
        *("em", "strong", "b", "i", "u", "s", "del", "ins", "mark", "small", "sub", "sup"),
        *("abbr", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption"),
    }
)
GLOBAL_ATTRIBUTES = frozenset({"id", "class", "title"})
ATTRIBUTES = {
    "a": frozenset({"href"}),
    "img": frozenset({"src", "alt", "width", "height"}),
    "ol": frozenset({"start"}),
    "th": frozenset({"style", "align", "colspan", "rowspan"}),
    "td": frozenset({"style", "align", "colspan", "rowspan"}),
}
# Dropped with everything inside them: their content is not text for the reader.
DROPPED_WHOLE = frozenset(
    {"script", "style", "template", "svg", "math", "object", "iframe", "noscript", "title"}
)
VOID = frozenset({"br", "hr", "img", "link", "meta", "base", "embed", "source", "input", "wbr"})
LINK_SCHEMES = ("http:", "https:", "mailto:", "tel:", "#")
ALIGNMENT = re.compile(r"\s*text-align:\s*(left|right|center)\s*;?\s*", re.I)


COMMENT = re.compile(r"[\w ]*")  # `<!-- schedule -->`; nothing that could end it early


@dataclass(frozen=True)
class Removed:
    what: str  # for the author: '<link rel="attachment" href="...">', 'rel="attachment" on <a>'
    needle: str  # what to look for in the source to find its line


@dataclass
class Cleaned:
    html: str
    removed: list[Removed] = field(default_factory=list)


def _kept(tag: str, name: str, value: str) -> bool:
    if name not in GLOBAL_ATTRIBUTES and name not in ATTRIBUTES.get(tag, frozenset()):
        return False
    if name == "href":
        return value.strip().lower().startswith(LINK_SCHEMES)
    if name == "style":
        return ALIGNMENT.fullmatch(value) is not None
    return True


class _Cleaner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.removed: list[Removed] = []
        self.skipping: list[str] = []  # open tags dropped with their content

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skipping:
            if tag not in VOID:
                self.skipping.append(tag)
            return
        if tag not in TAGS:
            shown = " ".join([tag, *(f'{k}="{v or ""}"' for k, v in attrs[:2])])
            self.removed.append(Removed(f"<{shown}>", f"<{tag}"))
            if tag in DROPPED_WHOLE:
                self.skipping.append(tag)
            return
        kept = []
        for name, value in attrs:
            if _kept(tag, name, value or ""):
                kept.append(f' {name}="{escape(value or "", quote=True)}"')
            else:
                self.removed.append(Removed(f'{name}="{value or ""}" on <{tag}>', value or name))
        self.out.append(f"<{tag}{''.join(kept)}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if self.skipping and self.skipping[-1] == tag and tag not in VOID:
            self.skipping.pop()

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag in self.skipping:  # closes it and whatever was left open inside it
                del self.skipping[len(self.skipping) - 1 - self.skipping[::-1].index(tag) :]
            return
        if tag in TAGS and tag not in VOID:
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(escape(data, quote=False))

    def handle_comment(self, data: str) -> None:
        if not self.skipping and COMMENT.fullmatch(data):  # `<!-- schedule -->` stays
            self.out.append(f"<!--{data}-->")


def clean(html: str) -> Cleaned:
    """`html` with only the allowed tags and attributes, and what was taken out."""
    cleaner = _Cleaner()
    cleaner.feed(html)
    cleaner.close()
    return Cleaned("".join(cleaner.out), cleaner.removed)
