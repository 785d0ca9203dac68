"""Lead-magnet PDFs: a sequence's `magnet.md` typeset with WeasyPrint.

The front matter's title, subtitle and notice make the title page, with the sequence's
author (drip.authors: the name, and the credential, which a `credential:` in the front
matter may override) and a table of contents that links to each `##` section and gives its
page; the body follows with page numbers in the footer. Each `##` section is kept on one
page when it fits, so a question group never starts at the foot of a page and ends on the
next, and a range such as "weeks 9–18" never breaks across lines. The page size follows the
reader's time zone: Letter in the US and Canada, A4 elsewhere. A reader who gave an exam
date gets the USMLE kit with their own study schedule (drip/study_plan.py) in place of the
template table after `<!-- schedule -->`.

Typesetting takes about a second, so PDFs are kept under `<data dir>/magnets/`: the common
one per sequence and page size (`drip build-magnets` makes them ahead of time), and each
personalised one under a hash of everything that went into it. A stamp beside a PDF (the
hash of magnet.md, the templates, this code and the drip version) says whether it is stale.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import markdown
import yaml
from jinja2 import Environment, FileSystemLoader

from drip.config import Settings
from drip.content import Sequence, split_front_matter
from drip.files import private_dir
from drip.paths import TEMPLATES
from drip.render import MARKDOWN_EXTENSIONS
from drip.study_plan import (
    SCHEDULE_MARKER,
    StudyPlan,
    day,
    plan_from_attributes,
    replace_schedule,
    schedule_markdown,
)

MAGNET_TEMPLATES = TEMPLATES / "magnet"
PAGE_SIZES = {"A4": "A4", "Letter": "letter"}
DEFAULT_PAGE_SIZE = "A4"
# Where readers print on Letter: the zones tzdata's zone.tab gives the US and Canada, the
# older names that link to them, and the US/* and Canada/* aliases.
LETTER_ZONES = frozenset(
    {
        "America/Adak",
        "America/Anchorage",
        "America/Boise",
        "America/Chicago",
        "America/Denver",
        "America/Detroit",
        "America/Indiana/Indianapolis",
        "America/Indiana/Knox",
        "America/Indiana/Marengo",
        "America/Indiana/Petersburg",
        "America/Indiana/Tell_City",
        "America/Indiana/Vevay",
        "America/Indiana/Vincennes",
        "America/Indiana/Winamac",
        "America/Juneau",
        "America/Kentucky/Louisville",
        "America/Kentucky/Monticello",
        "America/Los_Angeles",
        "America/Menominee",
        "America/Metlakatla",
        "America/New_York",
        "America/Nome",
        "America/North_Dakota/Beulah",
        "America/North_Dakota/Center",
        "America/North_Dakota/New_Salem",
        "America/Phoenix",
        "America/Sitka",
        "America/Yakutat",
        "Pacific/Honolulu",
        "America/Atikokan",
        "America/Blanc-Sablon",
        "America/Cambridge_Bay",
        "America/Creston",
        "America/Dawson",
        "America/Dawson_Creek",
        "America/Edmonton",
        "America/Fort_Nelson",
        "America/Glace_Bay",
        "America/Goose_Bay",
        "America/Halifax",
        "America/Inuvik",
        "America/Iqaluit",
        "America/Moncton",
        "America/Rankin_Inlet",
        "America/Regina",
        "America/Resolute",
        "America/St_Johns",
        "America/Swift_Current",
        "America/Toronto",
        "America/Vancouver",
        "America/Whitehorse",
        "America/Winnipeg",
        "America/Atka",
        "America/Fort_Wayne",
        "America/Indianapolis",
        "America/Knox_IN",
        "America/Louisville",
        "America/Shiprock",
        "Navajo",
        "America/Coral_Harbour",
        "America/Montreal",
        "America/Nipigon",
        "America/Pangnirtung",
        "America/Rainy_River",
        "America/Thunder_Bay",
        "America/Yellowknife",
        "EST5EDT",
        "CST6CDT",
        "MST7MDT",
        "PST8PDT",
    }
)
LETTER_PREFIXES = ("US/", "Canada/")
OL_START = re.compile(r'<ol start="(\d+)">')  # WeasyPrint numbers from 1 without this
H2 = re.compile(r"(?=<h2[\s>])")
TAG = re.compile(r"(<[^>]*>)")
RANGE = re.compile(r"(?:\bweeks?\s+)?\b\d+\s?–\s?\d+\b")  # "weeks 9–18", "3–4"
_CODE = (Path(__file__), Path(__file__).with_name("study_plan.py"))


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


def read_source(sequence: Sequence) -> MagnetSource:
    """magnet.md split into its front matter (title, subtitle) and Markdown body."""
    if sequence.lead_magnet is None:
        raise ValueError(f"{sequence.slug} has no lead magnet")
    text = sequence.lead_magnet.source.read_text(encoding="utf-8")
    parts = split_front_matter(text)
    meta: dict[str, Any] = {}
    body = text
    if parts is not None:
        loaded = yaml.safe_load(parts[0]) or {}
        meta = loaded if isinstance(loaded, dict) else {}
        body = parts[1]
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
        converter.convert(source.body),
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
    from weasyprint import HTML  # heavy: loaded only when a PDF is made

    document = magnet_html(sequence, source, page_size, for_reader)
    pdf: bytes = HTML(string=document, base_url=str(sequence.path)).write_pdf()
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


def is_current(settings: Settings, sequence: Sequence, page_size: str = DEFAULT_PAGE_SIZE) -> bool:
    pdf = common_path(settings, sequence, page_size)
    stamp = _stamp_path(pdf)
    return (
        pdf.is_file()
        and stamp.is_file()
        and stamp.read_text().strip() == source_stamp(sequence, page_size)
    )


def build(
    settings: Settings,
    sequence: Sequence,
    *,
    force: bool = False,
    page_size: str = DEFAULT_PAGE_SIZE,
) -> bool:
    """Build the common PDF unless it is current; True if it was (re)built."""
    if not force and is_current(settings, sequence, page_size):
        return False
    stamp = source_stamp(sequence, page_size)
    pdf = common_path(settings, sequence, page_size)
    _write_atomically(pdf, typeset(sequence, read_source(sequence), page_size))
    _write_atomically(_stamp_path(pdf), stamp.encode())
    return True


def reader_plan(sequence: Sequence, attributes: Mapping[str, Any], today: date) -> StudyPlan | None:
    """The reader's study plan, if this magnet has a schedule and they gave an exam date."""
    if sequence.lead_magnet is None or "exam_date" not in sequence.signup_fields:
        return None
    if SCHEDULE_MARKER not in sequence.lead_magnet.source.read_text(encoding="utf-8"):
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
    is where a schedule too late for the full plan starts.
    """
    plan = reader_plan(sequence, attributes, today or datetime.now(UTC).date())
    if plan is None:
        build(settings, sequence, page_size=page_size)
        return common_path(settings, sequence, page_size).read_bytes()
    source = personalised_source(read_source(sequence), plan)
    for_reader = f"With your own study schedule for your exam on {day(plan.exam_date)}."
    key = hashlib.sha256(
        "\0".join([source_stamp(sequence, page_size), source.body, for_reader]).encode()
    ).hexdigest()[:24]
    path = cache_dir(settings) / "personal" / f"{sequence.slug}-{key}.pdf"
    if path.is_file():
        return path.read_bytes()
    pdf = typeset(sequence, source, page_size, for_reader)
    _write_atomically(path, pdf)
    return pdf
