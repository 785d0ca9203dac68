"""The four real courses, walked through by a reader against a real SMTP server and a frozen
clock: every subject arrives once, in the order of the files, as many days apart as the
sequence files say, in the morning window of the reader's own time zone. And what the courses
say: Step 1 as pass/fail, a warning for an exam too close, no assumed month, a closing last
lesson, American spelling."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from drip.app import create_app
from drip.audience.subscriptions import Consent, subscribe
from drip.content.lessons import VARIABLE
from drip.content.loader import load_sequences
from drip.content.sequences import Lesson
from drip.content.study_plan import months_for, plan_for, schedule_markdown
from drip.core.clock import FrozenClock
from drip.services import build_services
from tests.conftest import advance_through_due_times, make_settings
from tests.smtp import SmtpServer

SEQUENCES = Path(__file__).resolve().parents[2] / "sequences"
QUESTION = "Still want these?"  # the re-permission email (templates/email/repermission.md)
COURSES = ["interview-questions", "usmle-insider-kit", "networking-tips", "procrastination"]
# Monday 16 March 2026, 06:40 in Chicago: before the reader's morning window opens.
SIGNUP = datetime(2026, 3, 16, 11, 40, tzinfo=UTC)
READER_ZONE = ZoneInfo("America/Chicago")
MAGNET_LINK = re.compile(r"http://drip\.test/magnet/[\w.~-]+")


def subject_for(lesson: Lesson, first_name: str) -> str:
    return VARIABLE.sub(lambda m: first_name or m["default"] or "", lesson.subject)


@pytest.mark.parametrize("slug", COURSES)
def test_a_reader_gets_the_whole_course_in_order_on_the_days_the_files_give(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, slug: str
) -> None:
    clock = FrozenClock(SIGNUP)
    settings = make_settings(
        tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=SEQUENCES
    )
    svc = build_services(settings, clock)
    sequence = load_sequences(SEQUENCES).sequences[slug]
    with svc.sessions() as session:
        subscribe(
            session,
            svc.content.library(),
            slug,
            "amara@example.org",
            clock(),
            consent=Consent(source="test", text=sequence.consent),
            first_name="Amara",
            timezone=READER_ZONE.key,
            confirmed=True,
            attributes={"exam_date": "2027-01-15", "responsibilities": "1"},
        )
        session.commit()

    advance_through_due_times(svc, clock)
    svc.engine.dispose()

    everything = smtp_server.to("amara@example.org")
    # Amara never clicks: a course longer than six lessons asks her once whether to go on
    # (drip.dispatch.repermission), and the lessons keep their days around the question.
    received = [m for m in everything if m.subject != QUESTION]
    quiet_after = svc.content.library().engagement.quiet_after
    assert len(everything) - len(received) == (1 if len(sequence.lessons) > quiet_after else 0)
    assert [m.subject for m in received] == [
        subject_for(lesson, "Amara") for lesson in sequence.lessons
    ]
    sent = [m.message["Date"].datetime.astimezone(READER_ZONE) for m in received]
    assert sent[0] == SIGNUP  # the welcome goes as soon as the reader is in
    for lesson, before, after in zip(sequence.lessons[1:], sent, sent[1:], strict=False):
        assert (after.date() - before.date()).days == lesson.delay.days, lesson.key
        assert sequence.window.start <= after.time() < sequence.window.end, lesson.key
    for message in everything:
        assert "Amara" in message.text()
        assert message.message["List-Unsubscribe"].startswith("<http://drip.test/unsubscribe/")


@pytest.mark.parametrize("slug", ["interview-questions", "usmle-insider-kit"])
def test_the_welcome_links_to_a_pdf_the_reader_can_download(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, slug: str
) -> None:
    clock = FrozenClock(SIGNUP)
    settings = make_settings(
        tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=SEQUENCES
    )
    app = create_app(settings, clock=clock)
    svc = app.extensions["drip"]
    with svc.sessions() as session:
        subscribe(
            session,
            svc.content.library(),
            slug,
            "amara@example.org",
            clock(),
            consent=Consent(source="test", text="yes"),
            first_name="Amara",
            timezone=READER_ZONE.key,
            confirmed=True,
            attributes={"exam_date": "2027-01-15", "responsibilities": "1"},
        )
        session.commit()
    svc.dispatcher().run_pass(clock())

    (welcome,) = smtp_server.to("amara@example.org")
    link = MAGNET_LINK.search(welcome.text())
    assert link is not None, welcome.text()
    response = app.test_client().get(urlsplit(link[0]).path)
    svc.engine.dispose()

    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = " ".join(
        " ".join(
            page.extract_text() or "" for page in PdfReader(io.BytesIO(response.data)).pages
        ).split()
    )
    if slug == "usmle-insider-kit":  # her own schedule: 7 months back from 15 January 2027
        assert "Your exam: Fri 15 Jan 2027" in text
        assert "Yours starts on Mon 15 Jun 2026" in text
    else:
        assert "Questions to ask them" in text


KIT = SEQUENCES / "usmle-insider-kit"
TEXT_FILES = {".md", ".yaml", ".yml", ".html", ".j2", ".css", ".txt"}
NUMBERS = {"six": 6, "seven": 7, "eight": 8, "nine": 9}
# Each British form with the American one the courses use (for a US-bound audience).
BRITISH = re.compile(
    r"\b(?:"
    + "|".join(
        [
            r"organis\w*",
            r"prioritis\w*",
            r"recognis\w*",
            r"realis(?:e|ed|es|ing|ation)",
            r"memoris\w*",
            r"personalis\w*",
            r"visualis\w*",
            r"summaris\w*",
            r"apologis\w*",
            r"emphasis(?:e|ed|es|ing)",
            r"specialis(?:e|ed|es|ing|ation)",
            r"familiaris\w*",
            r"criticis(?:e|ed|es|ing)",
            r"analys(?:e|ed|ing)",
            r"practis\w*",
            r"programmes?",
            r"behaviour\w*",
            r"colour\w*",
            r"favour\w*",
            r"humour\w*",
            r"neighbour\w*",
            r"honour\w*",
            r"labour\w*",
            r"centres?",
            r"centred",
            r"theatres?",
            r"fibres?",
            r"licence",
            r"cheques?",
            r"sceptic\w*",
            r"defence",
            r"offence",
            r"catalogue",
            r"travell\w*",
            r"cancell(?:ed|ing)",
            r"counsell\w*",
            r"modelling",
            r"labelled",
            r"judgement",
            r"enrol",
            r"enrolment",
            r"fulfil",
            r"fulfilment",
            r"skilful",
            r"whilst",
            r"amongst",
            r"learnt",
            r"towards",
            r"afterwards",
            r"enquir\w*",
            r"speciality",
            r"paediatric\w*",
            r"anaesthe\w*",
            r"haem\w*",
            r"oesophag\w*",
            r"gynaecolog\w*",
            r"orthopaed\w*",
            r"oedema",
            r"anaemi\w*",
            r"grey",
            r"maths",
            r"mum",
        ]
    )
    + r")\b",
    re.IGNORECASE,
)


def kit_files() -> list[Path]:
    return sorted([*KIT.glob("*.md"), KIT / "sequence.yaml"])


def paragraphs(path: Path) -> list[str]:
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", path.read_text())]


def test_the_usmle_kit_says_step_1_is_pass_fail_and_aims_240_at_the_scored_steps() -> None:
    for name in ("01-welcome.md", "magnet.md"):
        text = " ".join((KIT / name).read_text().split())
        assert "January 2022" in text and re.search(r"pass/fail|pass or fail", text), name
    for path in kit_files():
        for paragraph in paragraphs(path):
            if "240" in paragraph:  # the article's figure, only ever for the scored steps
                assert "Step 2 CK" in paragraph and "Step 3" in paragraph, (path.name, paragraph)
                assert re.search(r"pass/fail|pass or fail", paragraph), (path.name, paragraph)
        # no score the article does not give: the only three-digit number is its 240
        assert set(re.findall(r"\b\d{3}\b", path.read_text())) <= {"240"}, path.name


def test_the_kit_welcome_tells_a_reader_with_too_little_time_to_move_the_exam_if_they_can() -> None:
    text = " ".join((KIT / "01-welcome.md").read_text().split())
    found = re.search(
        r"less than (\w+) months away \(less than (\w+) with one other "
        r"responsibility, or (\w+) with more\)",
        text,
    )
    assert found is not None, "the welcome says when a schedule is shortened"
    # true for every reader: the months are the ones the schedule is computed with
    assert [NUMBERS[word] for word in found.groups()] == [months_for(n) for n in (0, 1, 2)]
    assert "warns that too little time" in text and "move your exam date" in text


def test_no_lesson_assumes_the_month_the_reader_joins_in() -> None:
    dated = re.compile(
        r"this time of (?:the )?year|at this time|this month|this season|"
        r"by (?:January|February|March|April|May|June|July|August|September|"
        r"October|November|December)",
        re.IGNORECASE,
    )
    for path in sorted(SEQUENCES.glob("*/[0-9]*.md")):
        assert not dated.findall(path.read_text()), path.relative_to(SEQUENCES)


@pytest.mark.parametrize("slug", COURSES)
def test_the_last_lesson_closes_the_course_with_what_next_and_the_blog(slug: str) -> None:
    last = load_sequences(SEQUENCES).sequences[slug].lessons[-1]
    text = last.path.read_text()
    assert "talk soon" not in text.lower(), last.path.name
    closing = text.split("## What to do next", 1)
    assert len(closing) == 2, f"{last.path.name} has no 'What to do next' section"
    assert "blog" in closing[1], last.path.name
    for lesson in load_sequences(SEQUENCES).sequences[slug].lessons[:-1]:
        assert "## What to do next" not in lesson.path.read_text(), lesson.path.name


def test_the_courses_use_american_spelling_throughout() -> None:
    """Every course file, every template and the computed schedule's own words."""
    folders = [SEQUENCES, SEQUENCES.parent / "templates"]
    texts = [
        (path, path.read_text(encoding="utf-8"))
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.suffix in TEXT_FILES
    ]
    plan = plan_for(date(2027, 6, 15), 0, date(2026, 11, 23))
    short = plan_for(date(2027, 2, 1), 1, date(2026, 11, 23))
    texts += [
        (Path("drip/content/study_plan.py"), schedule_markdown(plan) + schedule_markdown(short))
    ]
    found = [
        f"{path}:{text[: match.start()].count(chr(10)) + 1}: {match[0]}"
        for path, text in texts
        for match in BRITISH.finditer(text)
    ]
    assert not found, "British spellings:\n" + "\n".join(found)


def course_files() -> list[Path]:
    return sorted(path for path in SEQUENCES.rglob("*") if path.suffix in {".md", ".yaml"})


def blocks(path: Path) -> list[str]:
    """Paragraphs and list items, each on one line."""
    return [
        " ".join(item.split())
        for block in re.split(r"\n\s*\n", path.read_text())
        for item in re.split(r"\n(?=\s*(?:[-*]|\d+\.) )", block)
    ]


def test_the_courses_say_movie_not_film() -> None:
    found = [
        f"{path.relative_to(SEQUENCES)}: {m[0]}"
        for path in course_files()
        for m in re.finditer(r"\bfilms?\b", path.read_text(), re.IGNORECASE)
    ]
    assert not found, found


def test_periods_and_commas_go_inside_quotation_marks() -> None:
    """American style, in the courses and in the emails and pages drip writes itself."""
    templates = SEQUENCES.parent / "templates"
    paths = [*course_files(), *sorted((templates / "email").glob("*.md"))]
    paths += sorted((templates / "public").glob("*.*"))
    found = [
        f"{path.name}:{n}: {line.strip()[:80]}"
        for path in paths
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"[\"”][.,]", line) and not line.lstrip().startswith(("{%", "<"))
    ]
    assert not found, found


def test_a_question_about_where_else_you_interview_says_you_need_not_answer_it() -> None:
    """The NRMP Match Participation Agreement bars programs from asking it."""
    asking = re.compile(r"where else (?:are|have|did) you (?:interview|appl)", re.IGNORECASE)
    found = [
        (path, item) for path in course_files() for item in blocks(path) if asking.search(item)
    ]
    assert found, "the interview guide still lists the question, with the note"
    for path, item in found:
        assert "need not answer" in item, (path.name, item)
        assert "Match Participation Agreement" in item, (path.name, item)
        assert re.search(r"[Dd]ecline politely: \"[^\"]+\.\"", item), (path.name, item)


def test_an_offer_outside_the_match_is_dated_by_the_all_in_policy() -> None:
    for path in course_files():
        text = " ".join(path.read_text().split())
        if re.search(r"outside the match|out-of-match|out of match", text, re.IGNORECASE):
            assert "All-In policy" in text, path.relative_to(SEQUENCES)
            assert "fills all of its positions through the Match" in text


def test_the_interview_course_covers_video_days_and_program_signals_without_figures() -> None:
    folder = SEQUENCES / "interview-questions"
    text = " ".join(path.read_text() for path in sorted(folder.glob("[0-9]*.md")))
    assert "## When the interview or the dinner is on video" in text
    signals = text.split("## A short note on program signals", 1)
    assert len(signals) == 2
    note = signals[1].split("\n## ", 1)[0]
    assert "check the current rules" in note
    assert set(re.findall(r"\d+", note)) <= {"19"}  # only the PDF's question, no figures


def test_more_than_one_responsibility_is_8_to_9_months_everywhere_and_the_schedule_takes_9() -> (
    None
):
    longest = months_for(2)
    word = next(w for w, n in NUMBERS.items() if n == longest)
    top = re.compile(
        rf"\b(?:{longest}|{word})\b[^.]*top of|top of[^.]*\b(?:{longest}|{word})\b", re.I
    )
    for name in ("01-welcome.md", "02-decide-how-long.md", "06-wrap-up.md", "magnet.md"):
        text = " ".join((KIT / name).read_text().split())
        assert "8 to 9 months" in text, name
        assert top.search(text), name  # and says which end the computed schedule takes
    for path in kit_files():
        text = path.read_text()
        assert not re.search(r"eight to nine|8\s*[-–]\s*9", text, re.I), path.name


def test_the_wrap_up_starts_the_first_read_only_for_a_reader_whose_plan_starts_now() -> None:
    last = load_sequences(SEQUENCES).sequences["usmle-insider-kit"].lessons[-1]
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(last.body.split()))
    starting = [s for s in sentences if re.search(r"begin your first read", s, re.I)]
    assert starting, "the wrap-up says when the first read begins"
    assert all(s.startswith("If ") for s in starting), starting
    assert any("months away" in s for s in sentences)


def test_the_closing_lessons_link_the_blog_through_the_authors_url() -> None:
    for slug in COURSES:
        last = load_sequences(SEQUENCES).sequences[slug].lessons[-1]
        closing = last.body.split("## What to do next", 1)[1]
        assert "[my blog]({{ blog_url }})" in closing, slug
