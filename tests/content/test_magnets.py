"""The two lead-magnet PDFs: they build, open, carry their sections, and the USMLE kit gives
each reader a schedule for their own exam date, read back from the PDF's text."""

from __future__ import annotations

import io
import re
import shutil
import zoneinfo
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from drip.app import create_app
from drip.audience.subscriptions import Consent, subscribe
from drip.cli import cli
from drip.content import magnets
from drip.content.loader import load_sequence, load_sequences
from drip.content.page_sizes import LETTER_ZONES
from drip.content.sequences import Sequence
from drip.content.study_plan import SCHEDULE_MARKER
from drip.core.clock import FrozenClock
from drip.core.config import Settings, load_settings
from drip.services import build_services
from tests.conftest import make_settings
from tests.courses.test_course_originality import SEEDS, copied_runs, normalise, seed_windows
from tests.smtp import SmtpServer

REPO = Path(__file__).resolve().parents[2]
SEQUENCES = REPO / "sequences"
TODAY = date(2026, 11, 23)
POINTS = {"A4": (595.3, 841.9), "Letter": (612.0, 792.0)}
MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
DATE = re.compile(rf"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+(\d{{1,2}})\s+({MONTHS})\s+(\d{{4}})")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        environ={}, data_dir=tmp_path / "data", sequences_dir=SEQUENCES, secret_key="k"
    )


def real(slug: str) -> Sequence:
    sequence = load_sequences(SEQUENCES).get(slug)
    assert sequence is not None and sequence.lead_magnet is not None
    return sequence


def template_length_cell() -> str:
    """The Length cell of the template schedule's first row, as magnet.md has it."""
    source = (SEQUENCES / "usmle-insider-kit" / "magnet.md").read_text(encoding="utf-8")
    rows = [
        line
        for line in source.split(SCHEDULE_MARKER, 1)[1].splitlines()
        if line.startswith("|") and "---" not in line
    ]
    return rows[1].split("|")[2].strip()


def pdf_text(pdf: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    return reader, text.replace("\u00a0", " ")


def headings(sequence: Sequence) -> list[str]:
    assert sequence.lead_magnet is not None
    source = sequence.lead_magnet.source.read_text(encoding="utf-8")
    return re.findall(r"^## (.+)$", source, flags=re.M)


@pytest.mark.parametrize("page_size", ["A4", "Letter"])
@pytest.mark.parametrize("slug", ["interview-questions", "usmle-insider-kit"])
def test_magnet_builds_opens_and_has_its_title_page_sections_and_page_numbers(
    settings: Settings, slug: str, page_size: str
) -> None:
    sequence = real(slug)
    pdf = magnets.magnet_pdf(settings, sequence, {}, page_size=page_size)

    reader, text = pdf_text(pdf)
    width, height = POINTS[page_size]
    assert all(
        abs(float(page.mediabox.width) - width) < 1
        and abs(float(page.mediabox.height) - height) < 1
        for page in reader.pages
    )
    source = magnets.read_source(sequence)
    cover = " ".join((reader.pages[0].extract_text() or "").split())
    assert source.title in cover and " ".join(source.subtitle.split()) in cover
    pages = len(reader.pages)
    assert pages >= 3
    body = " ".join(text.split())
    for heading in headings(sequence):
        assert cover.count(heading) == 1, heading  # listed in the contents
        assert body.count(heading) >= 2, heading  # and typeset in the body
    for number in range(2, pages + 1):
        assert f"Page {number} of {pages}" in (reader.pages[number - 1].extract_text() or "")


def test_the_kit_without_an_exam_date_keeps_the_template_schedule(settings: Settings) -> None:
    _, text = pdf_text(
        magnets.magnet_pdf(settings, real("usmle-insider-kit"), {"responsibilities": "1"})
    )
    assert "Theory: first read" in text and template_length_cell() in text
    assert "Your exam:" not in text


def schedule_dates(text: str) -> list[date]:
    """Every date in the schedule table, in reading order."""
    table = text.split("What you do", 1)[1].split("How the lengths are set", 1)[0]
    return [date(int(y), MONTHS.split("|").index(m) + 1, int(d)) for d, m, y in DATE.findall(table)]


@pytest.mark.parametrize(
    ("answer", "exam", "months", "first_day"),
    [
        ("0", date(2027, 6, 15), 6, date(2026, 12, 15)),
        ("1", date(2027, 9, 1), 7, date(2027, 2, 1)),
        ("2+", date(2027, 10, 31), 9, date(2027, 1, 31)),
    ],
    ids=["no-other-responsibility", "one", "two-or-more"],
)
def test_each_reader_gets_a_schedule_whose_dates_follow_the_rules(
    settings: Settings, answer: str, exam: date, months: int, first_day: date
) -> None:
    pdf = magnets.magnet_pdf(
        settings,
        real("usmle-insider-kit"),
        {"exam_date": exam.isoformat(), "responsibilities": answer},
        today=TODAY,
    )
    _, text = pdf_text(pdf)
    flat = " ".join(text.split())

    assert f"The full plan is {months} months" in flat
    assert template_length_cell() not in text  # the template table is gone
    dates = schedule_dates(text)
    assert len(dates) == 11  # five phases from-to, then the day off
    starts, ends, day_off = dates[0:10:2], dates[1:10:2], dates[10]
    assert starts[0] == first_day
    assert day_off == exam - timedelta(days=1)
    for end, following in zip([*ends], [*starts[1:], day_off], strict=True):
        assert following - end == timedelta(days=1)  # phases follow without gap or overlap
    length = [(end - start).days + 1 for start, end in zip(starts, ends, strict=True)]
    first_read, second_read, subject_wise, mixed, last_week = length
    total = (exam - first_day).days
    assert abs((first_read + second_read) / total - 0.30) < 0.01
    assert second_read < first_read and mixed < subject_wise
    assert last_week == 6
    for phase in (
        "Theory: first read",
        "Theory: second read",
        "subject-wise half",
        "mixed half",
        "Last week",
        "Last day",
    ):
        assert phase in flat


def test_an_exam_too_close_for_the_full_plan_is_shortened_and_says_so(settings: Settings) -> None:
    _, text = pdf_text(
        magnets.magnet_pdf(
            settings,
            real("usmle-insider-kit"),
            {"exam_date": "2027-02-01", "responsibilities": "1"},
            today=TODAY,
        )
    )
    flat = " ".join(text.split())
    assert "Your plan is shortened" in flat
    assert "would have started on Wed 1 Jul 2026" in flat
    assert schedule_dates(text)[0] == TODAY
    # the article's warning, and the first exam date that leaves the full 7 months from today
    assert "warns against giving an exam too little time" in flat
    assert "move your exam date, think about moving it to Wed 23 Jun 2027 or later" in flat


def test_a_reader_with_time_for_the_full_plan_gets_no_warning(settings: Settings) -> None:
    _, text = pdf_text(
        magnets.magnet_pdf(
            settings,
            real("usmle-insider-kit"),
            {"exam_date": "2027-06-23", "responsibilities": "1"},
            today=TODAY,
        )
    )
    flat = " ".join(text.split())
    assert "Your exam: Wed 23 Jun 2027" in flat and "too little time" not in flat


def test_pdf_text_copies_no_run_of_words_from_the_seed_articles(settings: Settings) -> None:
    if not SEEDS.is_dir() or not seed_windows():
        pytest.skip(f"seed articles not found at {SEEDS}")
    for slug, attributes in [
        ("interview-questions", {}),
        ("usmle-insider-kit", {}),
        ("usmle-insider-kit", {"exam_date": "2027-02-01", "responsibilities": "1"}),
    ]:
        _, text = pdf_text(magnets.magnet_pdf(settings, real(slug), attributes, today=TODAY))
        assert copied_runs(normalise(text), seed_windows()) == [], slug


def test_readers_share_cached_pdfs_keyed_by_their_answers(settings: Settings) -> None:
    kit = real("usmle-insider-kit")
    common = magnets.magnet_pdf(settings, kit, {})
    assert magnets.common_path(settings, kit).read_bytes() == common
    assert magnets.magnet_pdf(settings, kit, {"responsibilities": "2+"}) == common

    answers = {"exam_date": "2027-06-15", "responsibilities": "0"}
    first = magnets.magnet_pdf(settings, kit, answers, today=TODAY)
    again = magnets.magnet_pdf(settings, kit, answers, today=TODAY)
    other = magnets.magnet_pdf(settings, kit, {**answers, "responsibilities": "1"}, today=TODAY)
    assert first == again != other
    assert len(list((magnets.cache_dir(settings) / "personal" / kit.slug).glob("*.pdf"))) == 2


def copy_of_kit(tmp_path: Path) -> tuple[Path, Sequence]:
    """The USMLE kit in a folder of its own, for a test to edit its magnet.md."""
    folder = tmp_path / "sequences" / "usmle-insider-kit"
    shutil.copytree(SEQUENCES / "usmle-insider-kit", folder)
    sequence, problems = load_sequence(folder)
    assert sequence is not None and not problems
    return folder, sequence


def test_common_pdf_is_rebuilt_only_when_its_source_changes(
    settings: Settings, tmp_path: Path
) -> None:
    folder, sequence = copy_of_kit(tmp_path)
    assert magnets.build(settings, sequence) is True
    built = magnets.common_path(settings, sequence).stat().st_mtime_ns
    assert magnets.build(settings, sequence) is False
    assert magnets.common_path(settings, sequence).stat().st_mtime_ns == built

    source = folder / "magnet.md"
    source.write_text(source.read_text().replace("## Your weekly check", "## Every Sunday"))
    assert not magnets.is_current(settings, sequence)
    assert magnets.build(settings, sequence) is True
    _, text = pdf_text(magnets.common_path(settings, sequence).read_bytes())
    assert "Every Sunday" in text
    assert magnets.build(settings, sequence, force=True) is True


def test_a_rebuild_drops_the_per_reader_pdfs_of_the_older_text_and_each_is_made_again(
    settings: Settings, tmp_path: Path
) -> None:
    folder, sequence = copy_of_kit(tmp_path)
    answers = {"exam_date": "2027-06-15", "responsibilities": "0"}
    magnets.magnet_pdf(settings, sequence, answers, today=TODAY)
    personal = magnets.cache_dir(settings) / "personal" / sequence.slug
    (older,) = personal.glob("*.pdf")
    assert magnets.rebuild(settings, sequence).dropped == 0  # still current: kept

    source = folder / "magnet.md"
    source.write_text(source.read_text().replace("## Your weekly check", "## Every Sunday"))
    rebuilt = magnets.rebuild(settings, sequence, sizes=("A4",))

    assert (rebuilt.built, rebuilt.dropped) == (("A4",), 1)
    assert not older.exists()
    _, text = pdf_text(magnets.magnet_pdf(settings, sequence, answers, today=TODAY))
    assert "Every Sunday" in text and "Your exam: Tue 15 Jun 2027" in " ".join(text.split())
    (newer,) = personal.glob("*.pdf")
    assert newer.name.startswith(magnets.source_stamp(sequence)[:16])


def test_drip_build_magnets_names_a_broken_magnet_and_keeps_its_old_pdf(tmp_path: Path) -> None:
    courses = tmp_path / "sequences"
    shutil.copytree(SEQUENCES / "interview-questions", courses / "interview-questions")
    env = {
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_SEQUENCES_DIR": str(courses),
        "DRIP_SECRET_KEY": "k",
        "DRIP_DATABASE_URL": f"sqlite:///{tmp_path / 'd.sqlite3'}",
    }
    runner = CliRunner()
    assert runner.invoke(cli, ["build-magnets"], env=env).exit_code == 0
    pdf = tmp_path / "data" / "magnets" / "interview-questions.pdf"
    before = pdf.read_bytes()
    source = courses / "interview-questions" / "magnet.md"
    source.write_bytes(source.read_bytes().replace(b"\n## ", b"\n\xff## ", 1))

    result = runner.invoke(cli, ["build-magnets", "--force"], env=env)

    assert result.exit_code == 1
    line = source.read_bytes().split(b"\xff")[0].count(b"\n") + 1
    assert f"{source}:{line}: this line is not UTF-8 text: save the file as UTF-8" in (
        result.stderr
    )
    assert pdf.read_bytes() == before


def test_drip_build_magnets_builds_each_pdf_once_until_forced(tmp_path: Path) -> None:
    env = {
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_SEQUENCES_DIR": str(SEQUENCES),
        "DRIP_SECRET_KEY": "k",
        "DRIP_DATABASE_URL": f"sqlite:///{tmp_path / 'd.sqlite3'}",
    }
    folder = tmp_path / "data" / "magnets"

    def run(*args: str) -> list[str]:
        result = CliRunner().invoke(cli, ["build-magnets", *args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return sorted(line for line in result.stdout.splitlines() if ": " in line)

    assert run() == [
        f"built: {folder / 'interview-questions.pdf'}",
        f"built: {folder / 'usmle-insider-kit.pdf'}",
    ]
    assert run() == [
        f"up to date: {folder / 'interview-questions.pdf'}",
        f"up to date: {folder / 'usmle-insider-kit.pdf'}",
    ]
    assert [line.split(":")[0] for line in run("--force")] == ["built", "built"]
    assert run("--page-size", "Letter") == [
        f"built: {folder / 'interview-questions-letter.pdf'}",
        f"built: {folder / 'usmle-insider-kit-letter.pdf'}",
    ]
    for pdf in folder.glob("*.pdf"):
        assert PdfReader(pdf).pages


def test_the_welcome_lesson_carries_the_readers_own_pdf_where_the_sequence_says_attach(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    """`attach: true`: the welcome lesson, as received by the SMTP server, has the PDF with
    the reader's own schedule; later lessons have none."""
    sequences = tmp_path / "sequences"
    shutil.copytree(SEQUENCES / "usmle-insider-kit", sequences / "usmle-insider-kit")
    definition = sequences / "usmle-insider-kit" / "sequence.yaml"
    definition.write_text(definition.read_text().replace("attach: false", "attach: true"))
    svc = build_services(
        make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=sequences),
        clock,
    )
    with svc.sessions() as session:
        subscribe(
            session,
            svc.content.library(),
            "usmle-insider-kit",
            "ada@example.org",
            clock(),
            consent=Consent("test", "Yes."),
            confirmed=True,
            attributes={"exam_date": "2027-06-14", "responsibilities": "0"},
        )
        session.commit()

    svc.dispatcher().run_pass(clock())
    svc.dispatcher().run_pass(clock.advance(days=3))

    welcome, second = smtp_server.to("ada@example.org")
    (attached,) = welcome.message.iter_attachments()
    assert attached.get_content_type() == "application/pdf"
    assert attached.get_filename() == "usmle-insider-kit.pdf"
    _, text = pdf_text(attached.get_content())
    assert "Your exam: Mon 14 Jun 2027" in " ".join(text.split())
    assert "/magnet/" in welcome.text() and "/magnet/" in welcome.html()  # the link stays
    assert list(second.message.iter_attachments()) == []
    svc.engine.dispose()


MIN_PAGE_CHARS = 1200  # a full body page holds about 2,000; below this a page is near-empty
LAYOUTS = {  # every shape a reader's PDF takes: the guide, the kit's template and plans
    "guide": ("interview-questions", {}),
    "kit-template": ("usmle-insider-kit", {}),
    "kit-full-plan": ("usmle-insider-kit", {"exam_date": "2027-06-15", "responsibilities": "0"}),
    "kit-shortened": ("usmle-insider-kit", {"exam_date": "2027-02-01", "responsibilities": "1"}),
    "kit-two-weeks": ("usmle-insider-kit", {"exam_date": "2026-12-01", "responsibilities": "0"}),
}
CASES = [(name, size) for name in LAYOUTS for size in POINTS]


# The typeset module fixture runs WeasyPrint over every layout and size: under
# `pytest-xdist --dist loadgroup` its tests share one worker, so it runs once (once pytest-xdist
# groups on pytest 9: 3.8 sets `item._nodeid`, which pytest 9 ignores).
TYPESET_ONCE = pytest.mark.xdist_group("magnet-typeset")


@pytest.fixture(scope="module")
def typeset(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[str]]:
    """Each layout in each page size, as the text of its pages (built once for the module)."""
    settings = load_settings(
        environ={},
        data_dir=tmp_path_factory.mktemp("data"),
        sequences_dir=SEQUENCES,
        secret_key="k",
    )
    pages = {}
    for name, size in CASES:
        slug, attributes = LAYOUTS[name]
        reader, _ = pdf_text(
            magnets.magnet_pdf(settings, real(slug), attributes, page_size=size, today=TODAY)
        )
        pages[name, size] = [
            (page.extract_text() or "").replace("\u00a0", " ") for page in reader.pages
        ]
    return pages


def body_of(page: str, title: str) -> str:
    """A page's text without its footer (the guide's title and "Page N of M")."""
    return re.sub(rf"{re.escape(title)}\s*Page \d+ of \d+", "", page).strip()


def plain_words(markdown_text: str) -> list[str]:
    """The words a reader sees in a line of magnet.md, as normalise() gives them."""
    text = re.sub(r"^\s*(?:\d+\.|[-*])\s+", "", markdown_text, flags=re.M)
    return normalise(re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text))


def page_of(pages: list[str], words: list[str]) -> list[int]:
    """The numbers of the body pages (the cover is 1) whose text holds `words` in a row."""
    found = []
    for number, page in enumerate(pages[1:], start=2):
        have = normalise(page)
        if any(have[i : i + len(words)] == words for i in range(len(have) - len(words) + 1)):
            found.append(number)
    return found


def heading_page(pages: list[str], heading: str) -> list[int]:
    """The numbers of the body pages where `heading` is printed as a heading (lines of its own)."""
    words = r"\s+".join(map(re.escape, heading.split()))
    pattern = re.compile(r"(?:^|\n)" + words + r"[ \t]*(?:\n|$)")
    return [number for number, page in enumerate(pages[1:], start=2) if pattern.search(page)]


def sections(slug: str) -> list[tuple[str, list[str]]]:
    """(heading, blocks) of each `##` section of magnet.md."""
    source = read_body(slug)
    return [
        (
            part.split("\n", 1)[0].strip(),
            [
                block.strip()
                for block in re.split(r"\n\s*\n", part.split("\n", 1)[1])
                if block.strip() and "<!--" not in block
            ],
        )
        for part in re.split(r"^## ", source, flags=re.M)[1:]
    ]


def read_body(slug: str) -> str:
    return magnets.read_source(real(slug)).body


@pytest.mark.slow
@TYPESET_ONCE
@pytest.mark.parametrize(("name", "size"), CASES)
def test_no_page_after_the_cover_is_near_empty_and_the_trademark_line_is_on_the_cover(
    typeset: dict[tuple[str, str], list[str]], name: str, size: str
) -> None:
    slug = LAYOUTS[name][0]
    source = magnets.read_source(real(slug))
    pages = typeset[name, size]
    for number, page in enumerate(pages[1:], start=2):
        assert len(body_of(page, source.title)) >= MIN_PAGE_CHARS, (number, page)
    if source.notice:
        assert source.notice in " ".join(pages[0].split())
        assert all(source.notice not in " ".join(page.split()) for page in pages[1:])


@pytest.mark.slow
@TYPESET_ONCE
@pytest.mark.parametrize(("name", "size"), CASES)
def test_every_section_and_its_notes_land_whole_on_one_page(
    typeset: dict[tuple[str, str], list[str]], name: str, size: str
) -> None:
    """A section (a question group with its note, a system step, the schedule) starts and
    ends on the same page, and no paragraph is cut at a page break."""
    pages = typeset[name, size]
    for heading, blocks in sections(LAYOUTS[name][0]):
        (start,) = heading_page(pages, heading)
        assert start in page_of(pages, plain_words(blocks[-1].splitlines()[-1])[-8:]), heading
        for block in blocks:
            if not block.startswith("|"):  # a paragraph or list: its first and last words
                words = plain_words(block)
                assert start in page_of(pages, words[:8]), (heading, block[:60])
                assert start in page_of(pages, words[-8:]), (heading, block[-60:])


@pytest.mark.slow
@TYPESET_ONCE
@pytest.mark.parametrize("size", POINTS)
def test_each_question_group_heading_shares_its_page_with_its_note_and_first_question(
    typeset: dict[tuple[str, str], list[str]], size: str
) -> None:
    pages = typeset["guide", size]
    groups = [
        (heading, blocks)
        for heading, blocks in sections("interview-questions")
        if blocks[0].startswith("**How to approach this group.**")
    ]
    assert len(groups) == 5
    for heading, (note, questions, *_) in groups:
        first_question = plain_words(questions.splitlines()[0])
        last_question = plain_words(questions.splitlines()[-1])
        (page,) = heading_page(pages, heading)
        assert page in page_of(pages, plain_words(note)[:12]), heading
        assert page in page_of(pages, first_question), heading
        assert page in page_of(pages, last_question), heading


@pytest.mark.slow
@TYPESET_ONCE
@pytest.mark.parametrize(("name", "size"), CASES)
def test_week_ranges_never_break_across_lines(
    typeset: dict[tuple[str, str], list[str]], name: str, size: str
) -> None:
    text = "\n".join(typeset[name, size])
    # a compact range ("weeks 9–18", "3–4") stays on one line; a range of dates may break
    # at its spaced dash, never inside a date
    assert not re.search(r"\bweeks?[ \t]*\n[ \t]*\d|\d–[ \t]*\n|\n[ \t]*–\d", text)
    lines = text.splitlines()
    for found in re.findall(r"weeks \d+–\d+", read_body(LAYOUTS[name][0])):
        if name == "kit-template":
            assert any(found in line for line in lines), found


def test_the_cover_names_the_author_when_set_and_always_gives_the_credential(
    tmp_path: Path,
) -> None:
    """The credential comes from sequences/site.yaml, the one place every course inherits
    it from; the name from the same place or, there unset, DRIP_AUTHOR_NAME."""
    kit = real("usmle-insider-kit")
    credential = magnets.read_source(kit).credential
    assert credential == "Assistant Professor of Medicine practicing in US"
    assert kit.author.credential == credential and kit.author.name == ""
    if SEEDS.is_dir():  # the seed articles' own wording
        assert credential in " ".join(seed.read_text() for seed in SEEDS.glob("*.txt"))
    settings = load_settings(environ={}, data_dir=tmp_path, sequences_dir=SEQUENCES, secret_key="k")
    named_library = load_sequences(SEQUENCES, author_name="Dr. Amara Okafor")
    for slug in ("interview-questions", "usmle-insider-kit"):
        named = named_library.sequences[slug]
        assert named.author.name == "Dr. Amara Okafor"
        assert magnets.read_source(real(slug)).credential == credential
        reader, _ = pdf_text(magnets.magnet_pdf(settings, real(slug), {}))
        cover = " ".join((reader.pages[0].extract_text() or "").split())
        assert credential in cover and "Amara" not in cover
        assert not magnets.is_current(settings, named)  # the name changes the PDF
        reader, _ = pdf_text(magnets.magnet_pdf(settings, named, {}))
        cover = " ".join((reader.pages[0].extract_text() or "").split())
        assert "Dr. Amara Okafor" in cover and credential in cover


@pytest.mark.parametrize(
    ("timezone", "size"),
    [
        ("America/New_York", "Letter"),
        ("America/Toronto", "Letter"),
        ("America/Los_Angeles", "Letter"),
        ("America/Vancouver", "Letter"),
        ("Pacific/Honolulu", "Letter"),
        ("US/Eastern", "Letter"),
        ("America/Montreal", "Letter"),
        ("Asia/Kolkata", "A4"),
        ("Europe/London", "A4"),
        ("America/Mexico_City", "A4"),
        ("America/Sao_Paulo", "A4"),
        ("UTC", "A4"),
        ("", "A4"),
        ("Not/A_Zone", "A4"),
    ],
)
def test_page_size_for_a_reader_follows_their_time_zone(timezone: str, size: str) -> None:
    assert magnets.page_size_for(timezone) == size


def test_every_us_and_canadian_zone_of_tzdata_prints_on_letter() -> None:
    tables = [
        Path(root) / "zone.tab" for root in zoneinfo.TZPATH if (Path(root) / "zone.tab").is_file()
    ]
    if not tables:
        pytest.skip("no zone.tab in zoneinfo.TZPATH")
    rows = [
        line.split("\t")
        for line in tables[0].read_text().splitlines()
        if line and not line.startswith("#")
    ]
    north_america = {row[2] for row in rows if row[0] in ("US", "CA")}
    assert north_america and north_america <= LETTER_ZONES
    assert not {row[2] for row in rows if row[0] not in ("US", "CA")} & LETTER_ZONES


def test_a_readers_download_and_attachment_come_in_the_paper_size_of_their_region(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    """Through /magnet/<token> and as the welcome's attachment (`attach: true`): Letter
    for readers in New York and Toronto, A4 for readers in Kolkata and London."""
    sequences = tmp_path / "sequences"
    shutil.copytree(SEQUENCES / "usmle-insider-kit", sequences / "usmle-insider-kit")
    definition = sequences / "usmle-insider-kit" / "sequence.yaml"
    definition.write_text(definition.read_text().replace("attach: false", "attach: true"))
    app = create_app(
        make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=sequences),
        clock=clock,
    )
    svc = app.extensions["drip"]
    readers = {
        "America/New_York": "Letter",
        "America/Toronto": "Letter",
        "Asia/Kolkata": "A4",
        "Europe/London": "A4",
    }
    with svc.sessions() as session:
        for zone in readers:
            subscribe(
                session,
                svc.content.library(),
                "usmle-insider-kit",
                f"{zone.split('/')[1].lower()}@example.org",
                clock(),
                consent=Consent("test", "Yes."),
                confirmed=True,
                timezone=zone,
            )
        session.commit()
    svc.dispatcher().run_pass(clock())

    for zone, size in readers.items():
        (welcome,) = smtp_server.to(f"{zone.split('/')[1].lower()}@example.org")
        (attached,) = welcome.message.iter_attachments()
        link = re.search(r"http://drip\.test(/magnet/[\w.~-]+)", welcome.text())
        assert link is not None
        downloaded = app.test_client().get(link[1])
        assert downloaded.status_code == 200
        for pdf in (attached.get_content(), downloaded.data):
            box = PdfReader(io.BytesIO(pdf)).pages[0].mediabox
            assert (round(float(box.width)), round(float(box.height))) == {
                "Letter": (612, 792),
                "A4": (595, 842),
            }[size], zone
    svc.engine.dispose()
