"""A message's Markdown made into its parts: the HTML body (the author's buttons, tracked
links, the open pixel), the text/plain part, and the edits made to an author's text before
(the blog's paragraphs, the note that the PDF is attached, typographic quotes, values put in
as literal text)."""

from __future__ import annotations

import html
import re

import markdown

from drip.content.lessons import BLOG_URL, MARKDOWN_EXTENSIONS, VARIABLE
from drip.mail.tokens import OPEN_PIXEL, TRACKED, Tokeniser

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


_MARKDOWN_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]+)\]\((?P<url>https?://[^)\s]+)\)")


def track_links(body: str, tokenise: Tokeniser) -> tuple[str, tuple[str, ...]]:
    """Each web link of a lesson's Markdown points at a token that becomes, per reader,
    /l/<token> (drip.mail.links.Links.track_url); returns the body and the original URLs."""
    targets: list[str] = []

    def swap(match: re.Match[str]) -> str:
        targets.append(match["url"])
        return f"[{match['text']}]({tokenise(f'{{{{ {TRACKED}{len(targets) - 1} }}}}')})"

    return _MARKDOWN_LINK.sub(swap, body), tuple(targets)


def body_html(body: str, tokenise: Tokeniser, *, pixel: bool) -> str:
    """The tokenised Markdown `body` as HTML, the author's buttons drawn; with `pixel` an
    open pixel at the end."""
    out = buttons(markdown.markdown(body, extensions=MARKDOWN_EXTENSIONS))
    if pixel:
        token = tokenise(f"{{{{ {OPEN_PIXEL} }}}}")
        out += f'<img src="{token}" width="1" height="1" alt="" style="display:block">'
    return out


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
