"""Lead-magnet PDFs: a sequence's `magnet.md` typeset with WeasyPrint.

The front matter's title, subtitle and notice make the title page, with the sequence's
author (drip.content.authors: the name, and the credential, which a `credential:` in the front
matter may override) and a table of contents that links to each `##` section and gives its
page; the body follows with page numbers in the footer. Each `##` section is kept on one
page when it fits, so a question group never starts at the foot of a page and ends on the
next, and a range such as "weeks 9–18" never breaks across lines. The page size follows the
reader's time zone: Letter in the US and Canada, A4 elsewhere. A reader who gave an exam
date gets the USMLE kit with their own study schedule (drip/content/study_plan.py) in place of the
template table after `<!-- schedule -->`.

Typesetting takes about a second, so PDFs are kept under `<data dir>/magnets/`: the common
one per sequence and page size (`drip build-magnets` and the admin's rebuild make them ahead
of time, through `rebuild`), with a PNG of its first page for the admin, and each
personalised one under a hash of everything that went into it. A stamp beside a PDF (the
hash of magnet.md, the templates, this code and the drip version) says whether it is stale.
A rebuild writes nothing until every PDF has typeset: a broken magnet.md raises
MagnetError (its `drip check` problem, at its line) and readers keep getting the last PDF
that built. Per-reader PDFs are not rebuilt with the common ones: a rebuild drops those of
an older source, and each is made again when its reader next downloads it.
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import markdown
from jinja2 import Environment, FileSystemLoader

from drip.content.fetch_rule import pdf_fetcher
from drip.content.front_matter import FrontMatterError, parse_front_matter
from drip.content.lessons import MARKDOWN_EXTENSIONS
from drip.content.page_sizes import DEFAULT_PAGE_SIZE, LETTER_PREFIXES, LETTER_ZONES, PAGE_SIZES
from drip.content.pdf_preview import render_first_page
from drip.content.safe_html import Cleaned, clean
from drip.content.sequences import Problem, Sequence
from drip.content.study_plan import (
    SCHEDULE_MARKER,
    StudyPlan,
    day,
    plan_from_attributes,
    replace_schedule,
    schedule_markdown,
)
from drip.core.config import Settings
from drip.core.files import private_dir
from drip.core.paths import TEMPLATES

log = logging.getLogger(__name__)

MAGNET_TEMPLATES = TEMPLATES / "magnet"
OL_START = re.compile(r'<ol start="(\d+)">')  # WeasyPrint numbers from 1 without this
H2 = re.compile(r"(?=<h2[\s>])")
TAG = re.compile(r"(<[^>]*>)")
RANGE = re.compile(r"(?:\bweeks?\s+)?\b\d+\s?–\s?\d+\b")  # "weeks 9–18", "3–4"
_CODE = tuple(  # a change to what the PDF may hold rebuilds it too
    Path(__file__).with_name(name)
    for name in ("magnets.py", "study_plan.py", "safe_html.py", "fetch_rule.py")
)


def page_size_for(timezone: str) -> str:
    """The page size a reader prints on, from their time zone: Letter in the US and Canada,
    A4 everywhere else (and when the zone is unknown)."""
    zone = (timezone or "").strip()
    return "Letter" if zone in LETTER_ZONES or zone.startswith(LETTER_PREFIXES) else "A4"


@dataclass(frozen=True)
class MagnetSource:
    title: str
    subtitle: str
    body: str  # Markdown
    credential: str = ""  # the author's one-line credential, on the cover
    notice: str = ""  # fine print (trademarks), at the foot of the cover


class MagnetError(Exception):
    """The lead magnet cannot be made; `problem` says where, as `drip check` does."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _source_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise MagnetError(
            Problem(path, 1, f"the lead magnet cannot be read: {error.strerror}")
        ) from error
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise MagnetError(
            Problem(path, line, "this line is not UTF-8 text: save the file as UTF-8")
        ) from error


def read_source(sequence: Sequence) -> MagnetSource:
    """magnet.md split into its front matter (title, subtitle) and Markdown body; raises
    MagnetError when the file cannot be read or its front matter is not keys and values."""
    if sequence.lead_magnet is None:
        raise ValueError(f"{sequence.slug} has no lead magnet")
    path = sequence.lead_magnet.source
    text = _source_text(path)
    try:
        parsed = parse_front_matter(text, path)
    except FrontMatterError as error:
        raise MagnetError(error.problem) from None
    meta, body = parsed.meta, parsed.body
    return MagnetSource(
        title=str(meta.get("title") or sequence.lead_magnet.title),
        subtitle=str(meta.get("subtitle") or ""),
        body=body,
        credential=str(meta.get("credential") or sequence.author.credential),
        notice=str(meta.get("notice") or ""),
    )


def _version() -> str:
    try:
        return metadata.version("drip")
    except metadata.PackageNotFoundError:
        return "unknown"


def source_stamp(sequence: Sequence, page_size: str = DEFAULT_PAGE_SIZE) -> str:
    """Hash of every input of the common PDF: it changes when the PDF must be rebuilt."""
    if sequence.lead_magnet is None:
        raise ValueError(f"{sequence.slug} has no lead magnet")
    digest = hashlib.sha256()
    files = [sequence.lead_magnet.source, *sorted(MAGNET_TEMPLATES.iterdir()), *_CODE]
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    author = sequence.author
    digest.update(f"{_version()}\0{page_size}\0{author.name}\0{author.credential}".encode())
    return digest.hexdigest()


def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(MAGNET_TEMPLATES), autoescape=True)


def _keep_ranges_whole(body: str) -> str:
    """Numeric ranges in the text ("weeks 9–18", "3–4") wrapped so no line breaks them."""
    return "".join(
        part
        if part.startswith("<")
        else RANGE.sub(lambda m: f'<span class="nowrap">{m[0]}</span>', part)
        for part in TAG.split(body)
    )


def _sections(body: str) -> str:
    """Each `##` heading and what follows it, up to the next, as one <section>: the unit
    the style sheet keeps on one page."""
    parts = H2.split(body)
    return parts[0] + "".join(
        f'<section class="part{" schedule" if SCHEDULE_MARKER in part else ""}">{part}</section>'
        for part in parts[1:]
    )


def body_html(body: str) -> Cleaned:
    """The magnet's Markdown as the HTML the PDF may hold (drip.content.safe_html), and what of the
    author's raw HTML was left out."""
    return clean(markdown.markdown(body, extensions=[*MARKDOWN_EXTENSIONS, "toc"]))


def magnet_html(
    sequence: Sequence,
    source: MagnetSource,
    page_size: str = DEFAULT_PAGE_SIZE,
    for_reader: str = "",
) -> str:
    """The HTML WeasyPrint typesets; also handy to look at in a browser."""
    if page_size not in PAGE_SIZES:
        raise ValueError(f"page size must be one of {', '.join(PAGE_SIZES)}, not {page_size!r}")
    converter = markdown.Markdown(extensions=[*MARKDOWN_EXTENSIONS, "toc"])
    body = OL_START.sub(
        lambda m: f'<ol start="{m[1]}" style="counter-reset: list-item {int(m[1]) - 1}">',
        clean(converter.convert(source.body)).html,
    )
    body = _sections(_keep_ranges_whole(body))
    tokens: list[dict[str, Any]] = getattr(converter, "toc_tokens", [])
    contents = [
        (token["id"], html.unescape(str(token["name"]))) for token in tokens if token["level"] == 2
    ]
    return (
        _environment()
        .get_template("magnet.html.j2")
        .render(
            title=source.title,
            subtitle=source.subtitle,
            kicker="Your free guide",
            author=sequence.author.name,
            credential=source.credential,
            notice=source.notice,
            for_reader=for_reader,
            contents=contents,
            body=body,
            page_size=PAGE_SIZES[page_size],
            css=(MAGNET_TEMPLATES / "magnet.css").read_text(encoding="utf-8"),
        )
    )


def typeset(
    sequence: Sequence,
    source: MagnetSource,
    page_size: str = DEFAULT_PAGE_SIZE,
    for_reader: str = "",
) -> bytes:
    """The PDF; WeasyPrint reads only what drip.content.fetch_rule allows (data: URLs and files in
    the sequence's own folder), never the server's other files or the network."""
    from weasyprint import HTML  # heavy: loaded only when a PDF is made

    document = magnet_html(sequence, source, page_size, for_reader)
    fetcher = pdf_fetcher(sequence.path)
    pdf: bytes = HTML(string=document, base_url=str(sequence.path), url_fetcher=fetcher).write_pdf()
    return pdf


def personalised_source(source: MagnetSource, plan: StudyPlan) -> MagnetSource:
    return replace(source, body=replace_schedule(source.body, schedule_markdown(plan)))


def cache_dir(settings: Settings) -> Path:
    return settings.data_dir / "magnets"


def common_path(settings: Settings, sequence: Sequence, page_size: str = DEFAULT_PAGE_SIZE) -> Path:
    suffix = "" if page_size == DEFAULT_PAGE_SIZE else f"-{page_size.lower()}"
    return cache_dir(settings) / f"{sequence.slug}{suffix}.pdf"


def _stamp_path(pdf: Path) -> Path:
    return pdf.with_suffix(".stamp")


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers of the cache (other web workers) see the old file or the new one, never half."""
    private_dir(path.parent)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def _built_stamp(pdf: Path) -> str | None:
    """The stamp of the PDF at `pdf` (the inputs it was built from), or None without one."""
    stamp = _stamp_path(pdf)
    return stamp.read_text().strip() if pdf.is_file() and stamp.is_file() else None


def is_current(settings: Settings, sequence: Sequence, page_size: str = DEFAULT_PAGE_SIZE) -> bool:
    return _built_stamp(common_path(settings, sequence, page_size)) == source_stamp(
        sequence, page_size
    )


@dataclass(frozen=True)
class Rebuilt:
    built: tuple[str, ...]  # the page sizes typeset anew
    dropped: int  # per-reader PDFs of an older source removed


def steps(sizes: tuple[str, ...]) -> int:
    """How many steps `rebuild` reports: one per page size, then saving and tidying."""
    return len(sizes) + 1


def _typeset_common(settings: Settings, sequence: Sequence, page_size: str) -> bytes:
    source = read_source(sequence)
    assert sequence.lead_magnet is not None  # read_source refuses a sequence without one
    try:
        return typeset(sequence, source, page_size)
    except Exception as error:  # WeasyPrint's own: whatever it is, say which file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise MagnetError(
            Problem(sequence.lead_magnet.source, 1, f"the PDF cannot be typeset: {reason}")
        ) from error


def rebuild(
    settings: Settings,
    sequence: Sequence,
    *,
    sizes: tuple[str, ...] = tuple(PAGE_SIZES),
    force: bool = False,
    progress: Callable[[int, str], None] | None = None,
) -> Rebuilt:
    """Typeset the common PDF in each page size (those that are stale, or all with
    `force`), then save them with their first-page images and drop the per-reader PDFs of
    an older source. Nothing is saved unless every size typeset: raises MagnetError, and
    readers keep the PDFs they had. `progress` hears (steps done, what comes next) as each
    of the `steps(sizes)` steps starts, and (all of them, "") at the end."""
    report = progress or (lambda _done, _next: None)
    fresh: dict[str, tuple[str, bytes]] = {}
    for done, page_size in enumerate(sizes):
        report(done, f"typesetting the {page_size} PDF")
        if force or not is_current(settings, sequence, page_size):
            stamp = source_stamp(sequence, page_size)
            fresh[page_size] = (stamp, _typeset_common(settings, sequence, page_size))
    report(len(sizes), "saving the PDFs and their first pages")
    for page_size, (stamp, pdf) in fresh.items():
        path = common_path(settings, sequence, page_size)
        _write_atomically(path, pdf)
        _write_atomically(_stamp_path(path), stamp.encode())
    for page_size in sizes:
        first_page(settings, sequence, page_size)
    dropped = drop_stale(settings, sequence)
    report(steps(sizes), "")
    return Rebuilt(tuple(fresh), dropped)


def build(
    settings: Settings,
    sequence: Sequence,
    *,
    force: bool = False,
    page_size: str = DEFAULT_PAGE_SIZE,
) -> bool:
    """Build the common PDF unless it is current; True if it was (re)built."""
    return bool(rebuild(settings, sequence, sizes=(page_size,), force=force).built)


def first_page(
    settings: Settings, sequence: Sequence, page_size: str = DEFAULT_PAGE_SIZE
) -> Path | None:
    """A PNG of the first page of the PDF readers get now, for the admin; None while there
    is no PDF. Made once per PDF: its name carries the PDF's stamp, the older one goes."""
    pdf = common_path(settings, sequence, page_size)
    stamp = _built_stamp(pdf)
    if stamp is None:
        return None
    png = pdf.with_name(f"{pdf.stem}.{stamp[:16]}.png")
    if not png.is_file():
        _write_atomically(png, render_first_page(pdf.read_bytes()))
        for old in pdf.parent.glob(f"{pdf.stem}.*.png"):
            if old != png:
                old.unlink(missing_ok=True)
    return png


def _personal_dir(settings: Settings, sequence: Sequence) -> Path:
    return cache_dir(settings) / "personal" / sequence.slug


def drop_stale(settings: Settings, sequence: Sequence) -> int:
    """Remove the per-reader PDFs made from an older source: none is served again (a name
    starts with the stamp of its source), and each is made anew on its reader's next
    download. Returns how many went."""
    current = {source_stamp(sequence, size)[:16] for size in PAGE_SIZES}
    dropped = 0
    for path in _personal_dir(settings, sequence).glob("*.pdf"):
        if path.name.split("-", 1)[0] not in current:
            path.unlink(missing_ok=True)
            dropped += 1
    return dropped


def reader_plan(sequence: Sequence, attributes: Mapping[str, Any], today: date) -> StudyPlan | None:
    """The reader's study plan, if this magnet has a schedule and they gave an exam date."""
    if sequence.lead_magnet is None or "exam_date" not in sequence.signup_fields:
        return None
    if SCHEDULE_MARKER not in _source_text(sequence.lead_magnet.source):
        return None
    return plan_from_attributes(attributes, today)


def magnet_pdf(
    settings: Settings,
    sequence: Sequence,
    attributes: dict[str, Any],
    *,
    page_size: str = DEFAULT_PAGE_SIZE,
    today: date | None = None,
) -> bytes:
    """The lead magnet for a reader with these sign-up `attributes`.

    Without personal data: the common PDF, built now if `drip build-magnets` has not (or
    the source changed since). With an exam date: a PDF with their schedule, cached by
    the hash of its inputs so readers with the same answers share one file. `today`
    is where a schedule too late for the full plan starts. While magnet.md is broken the
    reader gets the last common PDF that built (logged), or MagnetError when none did.
    """
    try:
        return _made_for(settings, sequence, attributes, page_size, today)
    except MagnetError as error:
        last = common_path(settings, sequence, page_size)
        if not last.is_file():
            raise
        log.warning("lead magnet of %s: %s; serving the last PDF that built", sequence.slug, error)
        return last.read_bytes()


def _made_for(
    settings: Settings,
    sequence: Sequence,
    attributes: dict[str, Any],
    page_size: str,
    today: date | None,
) -> bytes:
    plan = reader_plan(sequence, attributes, today or datetime.now(UTC).date())
    if plan is None:
        build(settings, sequence, page_size=page_size)
        return common_path(settings, sequence, page_size).read_bytes()
    source = personalised_source(read_source(sequence), plan)
    for_reader = f"With your own study schedule for your exam on {day(plan.exam_date)}."
    stamp = source_stamp(sequence, page_size)
    key = hashlib.sha256("\0".join([stamp, source.body, for_reader]).encode()).hexdigest()[:24]
    path = _personal_dir(settings, sequence) / f"{stamp[:16]}-{key}.pdf"
    if path.is_file():
        return path.read_bytes()
    pdf = typeset(sequence, source, page_size, for_reader)
    _write_atomically(path, pdf)
    return pdf
