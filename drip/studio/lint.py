"""Warnings for `drip check`: things that do not stop a lesson going out but spoil it in the
inbox. They are Problems with severity "warning", so they print without failing the check.

- rendered HTML over 100 KB: Gmail clips a message at about 102 KB and hides the rest (the
  footer with the unsubscribe link among it) behind "View entire message";
- an image without alt text: many mail apps block images until asked, and screen readers
  read nothing;
- a plain http:// link or image: flagged by some filters, and readers see "not secure";
- a link or image pointing at a file that does not exist beside the lesson.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import markdown

from drip.content.fetch_rule import refusal
from drip.content.lessons import MARKDOWN_EXTENSIONS
from drip.content.magnets import MagnetError, body_html, read_source
from drip.content.magnets import build as build_magnet
from drip.content.sequences import Lesson, Library, Problem, Sequence
from drip.content.variants import arms
from drip.core.config import Settings
from drip.mail.links import Links, sample_links
from drip.mail.render import SAMPLE_READER, Renderer
from drip.mail.tokens import TOKEN

HTML_LIMIT = 100 * 1024
MJ_INCLUDE = re.compile(r"<\s*mj-include\b", re.I)
INCLUDE_REFUSED = (
    "<mj-include> reads another file into the email, which drip never does: "
    "paste the text into the lesson instead"
)
LINK_ALLOWANCE = 200  # bytes a signed link may take where the template holds a short token


@dataclass(frozen=True)
class Reference:
    tag: str
    attribute: str
    target: str
    alt: str | None


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Reference] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.found.append(Reference(tag, "src", values.get("src") or "", values.get("alt")))
        elif tag == "a" and values.get("href"):
            self.found.append(Reference(tag, "href", values["href"] or "", None))


def references(body: str) -> list[Reference]:
    """The images and links of a lesson body, as its Markdown renders."""
    parser = _References()
    parser.feed(markdown.markdown(body, extensions=MARKDOWN_EXTENSIONS))
    return parser.found


def _line(lesson: Lesson, needle: str) -> int:
    """Line of the lesson file where `needle` first appears (the body's first line if not)."""
    for number, line in enumerate(lesson.body.splitlines(), start=lesson.body_line):
        if needle and needle in line:
            return number
    return lesson.body_line


def _local_file(sequence: Sequence, target: str) -> Path | None:
    """The file a link points at, if it is a local path rather than a web address."""
    if not target or "{{" in target or target.startswith(("#", "mailto:", "tel:")):
        return None
    parts = urlsplit(target)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme or parts.netloc:
        return None
    path = Path(unquote(parts.path))
    return path if path.is_absolute() else sequence.path / path


def rendered_size(html: str) -> int:
    """Bytes of a lesson's HTML as sent: each token becomes a link of up to LINK_ALLOWANCE."""
    tokens = TOKEN.findall(html)
    return len(html.encode()) + sum(LINK_ALLOWANCE - len(token) for token in tokens)


def lint_lesson(sequence: Sequence, lesson: Lesson, renderer: Renderer) -> list[Problem]:
    problems = []
    size = rendered_size(renderer.lesson(sequence, lesson).html)
    if size > HTML_LIMIT:
        problems.append(
            Problem(
                lesson.path,
                1,
                f"the lesson's HTML is {size / 1024:.0f} KB; "
                "Gmail clips messages over about 102 KB, hiding the rest "
                "(and the unsubscribe link): shorten it",
                "warning",
            )
        )
    for ref in references(lesson.body):
        line = _line(lesson, ref.target)
        if ref.tag == "img" and not (ref.alt or "").strip():
            problems.append(
                Problem(
                    lesson.path,
                    line,
                    f"image {ref.target} has no alt text; "
                    "write what it shows, e.g. ![Study plan](plan.png)",
                    "warning",
                )
            )
        if ref.target.lower().startswith("http://"):
            problems.append(
                Problem(
                    lesson.path,
                    line,
                    f"plain http link {ref.target}: use https:// if the site offers it",
                    "warning",
                )
            )
        if urlsplit(ref.target).scheme.lower() == "file":
            problems.append(
                Problem(
                    lesson.path,
                    line,
                    f"{ref.target} is a file on a computer, not an address readers' mail can "
                    "open (drip never reads it): put it on the web and use its https:// address",
                    "warning",
                )
            )
        local = _local_file(sequence, ref.target)
        if local is not None and not local.exists():
            problems.append(
                Problem(
                    lesson.path,
                    line,
                    f"{ref.attribute}={ref.target!r} points at a file that does not exist",
                    "warning",
                )
            )
    return problems


def _line_in(path: Path, needle: str) -> int:
    """Line of `path` where `needle` first appears, ignoring case (1 if nowhere)."""
    lowered = needle.lower()
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return next((n for n, line in enumerate(lines, 1) if lowered in line.lower()), 1)


def magnet_problems(sequence: Sequence) -> list[Problem]:
    """The lead magnet's raw HTML that the PDF leaves out (drip.content.safe_html), and each picture
    it names that drip will not read (drip.content.fetch_rule), as errors at their lines."""
    assert sequence.lead_magnet is not None
    path = sequence.lead_magnet.source
    cleaned = body_html(read_source(sequence).body)
    problems = [
        Problem(
            path,
            _line_in(path, removed.needle),
            f"{removed.what} is not allowed in a lead magnet and is left out of the PDF: "
            "it may hold text, links and pictures, no attachments, styles or scripts",
        )
        for removed in cleaned.removed
    ]
    parser = _References()
    parser.feed(cleaned.html)
    for ref in parser.found:
        reason = refusal(ref.target, sequence.path) if ref.tag == "img" else None
        if reason is not None:
            problems.append(Problem(path, _line_in(path, ref.target), f"picture {reason}"))
    return problems


def lint(library: Library, renderer: Renderer) -> list[Problem]:
    """Warnings for every lesson of every usable sequence."""
    return [
        problem
        for sequence in library.sequences.values()
        for lesson in sequence.lessons
        for problem in lint_lesson(sequence, lesson, renderer)
    ]


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def render_problems(
    library: Library,
    renderer: Renderer,
    links: Links,
    settings: Settings,
    now: datetime,
    *,
    typeset: bool = True,
) -> list[Problem]:
    """Build every message each usable sequence would send (each lesson, the confirmation,
    the lead-magnet PDF) for a sample reader, so what would fail at send time fails here
    first, as an error at the file it comes from. `typeset=False` leaves out the PDF, which
    takes a second or more: the studio's preview, asked for as the author types."""
    problems: list[Problem] = []
    sample = sample_links(links)
    for sequence in library.sequences.values():
        yaml_file = sequence.path / "sequence.yaml"
        for lesson in (arm for each in sequence.lessons for arm in arms(each)):  # variants too
            if include := MJ_INCLUDE.search(lesson.body):
                line = lesson.body_line + lesson.body[: include.start()].count("\n")
                problems.append(Problem(lesson.path, line, INCLUDE_REFUSED))
                continue
            try:
                renderer.lesson(sequence, lesson).build(SAMPLE_READER, sample, "<check@drip>", now)
            except Exception as error:  # whatever it is, sending would meet it too
                problems.append(
                    Problem(
                        lesson.path,
                        lesson.body_line,
                        f"the lesson cannot be rendered: {_one_line(error)}",
                    )
                )
        try:
            renderer.confirmation(sequence).build(SAMPLE_READER, sample, "<check@drip>", now)
        except Exception as error:
            problems.append(
                Problem(
                    yaml_file,
                    1,
                    "the confirmation email cannot be rendered "
                    f"from these settings: {_one_line(error)}",
                )
            )
        if sequence.lead_magnet is not None:
            try:
                renderer.magnet_link(sequence).build(SAMPLE_READER, sample, "<check@drip>", now)
                problems += magnet_problems(sequence)
                if typeset:
                    build_magnet(settings, sequence)  # magnet_pdf would serve the last good one
            except MagnetError as error:
                problems.append(error.problem)
            except Exception as error:
                problems.append(
                    Problem(
                        sequence.lead_magnet.source,
                        1,
                        f"the lead magnet cannot be made: {_one_line(error)}",
                    )
                )
    return problems
