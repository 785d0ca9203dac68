"""The four real courses, walked through by a reader against a real SMTP server and a frozen
clock: every subject arrives once, in the order of the files, as many days apart as the
sequence files say, in the morning window of the reader's own time zone."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from drip.app import create_app
from drip.clock import FrozenClock
from drip.content import VARIABLE, Lesson, load_sequences
from drip.services import build_services
from drip.subscriptions import Consent, subscribe
from tests.conftest import advance_through_due_times, make_settings
from tests.smtp import SmtpServer

SEQUENCES = Path(__file__).resolve().parents[1] / "sequences"
COURSES = ["interview-questions", "usmle-insider-kit", "networking-tips", "procrastination"]
# Monday 16 March 2026, 06:40 in Chicago: before the reader's morning window opens.
SIGNUP = datetime(2026, 3, 16, 11, 40, tzinfo=UTC)
READER_ZONE = ZoneInfo("America/Chicago")
MAGNET_LINK = re.compile(r"http://drip\.test/magnet/[\w.~-]+")


def subject_for(lesson: Lesson, first_name: str) -> str:
    return VARIABLE.sub(lambda m: first_name or m["default"] or "", lesson.subject)


@pytest.mark.parametrize("slug", COURSES)
def test_a_reader_gets_the_whole_course_in_order_on_the_days_the_files_give(
        tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, slug: str) -> None:
    clock = FrozenClock(SIGNUP)
    settings = make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url,
                             sequences_dir=SEQUENCES)
    svc = build_services(settings, clock)
    sequence = load_sequences(SEQUENCES).sequences[slug]
    with svc.sessions() as session:
        subscribe(session, svc.content.library(), slug, "amara@example.org", clock(),
                  consent=Consent(source="test", text=sequence.consent), first_name="Amara",
                  timezone=READER_ZONE.key, confirmed=True,
                  attributes={"exam_date": "2027-01-15", "responsibilities": "1"})
        session.commit()

    advance_through_due_times(svc, clock)
    svc.engine.dispose()

    received = smtp_server.to("amara@example.org")
    assert [m.subject for m in received] == [subject_for(lesson, "Amara")
                                             for lesson in sequence.lessons]
    sent = [m.message["Date"].datetime.astimezone(READER_ZONE) for m in received]
    assert sent[0] == SIGNUP  # the welcome goes as soon as the reader is in
    for lesson, before, after in zip(sequence.lessons[1:], sent, sent[1:], strict=False):
        assert (after.date() - before.date()).days == lesson.delay.days, lesson.key
        assert sequence.window.start <= after.time() < sequence.window.end, lesson.key
    for message in received:
        assert "Amara" in message.text()
        assert message.message["List-Unsubscribe"].startswith("<http://drip.test/unsubscribe/")


@pytest.mark.parametrize("slug", ["interview-questions", "usmle-insider-kit"])
def test_the_welcome_links_to_a_pdf_the_reader_can_download(
        tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, slug: str) -> None:
    clock = FrozenClock(SIGNUP)
    settings = make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url,
                             sequences_dir=SEQUENCES)
    app = create_app(settings, clock=clock)
    svc = app.extensions["drip"]
    with svc.sessions() as session:
        subscribe(session, svc.content.library(), slug, "amara@example.org", clock(),
                  consent=Consent(source="test", text="yes"), first_name="Amara",
                  timezone=READER_ZONE.key, confirmed=True,
                  attributes={"exam_date": "2027-01-15", "responsibilities": "1"})
        session.commit()
    svc.dispatcher().run_pass(clock())

    (welcome,) = smtp_server.to("amara@example.org")
    link = MAGNET_LINK.search(welcome.text())
    assert link is not None, welcome.text()
    response = app.test_client().get(urlsplit(link[0]).path)
    svc.engine.dispose()

    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = " ".join(" ".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(
        response.data)).pages).split())
    if slug == "usmle-insider-kit":  # her own schedule: 7 months back from 15 January 2027
        assert "Your exam: Fri 15 Jan 2027" in text
        assert "Yours starts on Mon 15 Jun 2026" in text
    else:
        assert "Questions to ask them" in text
