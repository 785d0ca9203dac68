"""The reader's pace in Debian's Chromium, from a lesson's footer: pause for two weeks, the
next lesson now, away until a date; and a link scanner that opens every footer link changes
nothing. Screenshots go to artifacts/screenshots/pace/."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from drip.core.clock import FrozenClock
from drip.store.models import ConsentRecord, Enrollment, Event, EventKind
from tests.conftest import LiveServer, advance_through_due_times, enroll, screenshot, serving
from tests.smtp import Received, SmtpServer

pytestmark = pytest.mark.browser

KOLKATA = ZoneInfo("Asia/Kolkata")  # the tiny course sends 09:00-11:00 in the reader's zone
PACE_LINK = re.compile(r"https?://[^\s/]+/pace/[a-z]+/[A-Za-z0-9_.\-]+")


@pytest.fixture
def server(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[LiveServer]:
    with serving(tmp_path, sqlite_url, clock, smtp_url=smtp_server.url) as live:
        yield live


def welcomed(server: LiveServer, smtp: SmtpServer, clock: FrozenClock) -> Received:
    """A reader in Kolkata, confirmed; the first pass sends the welcome, with its footer."""
    enroll(server.services, "ada@example.org", timezone="Asia/Kolkata")
    server.services.dispatcher().run_pass(clock())
    (welcome,) = smtp.to("ada@example.org")
    return welcome


def pace_links(message: Received) -> dict[str, str]:
    """The footer's pace links by what they say, from the text part (the HTML has the same)."""
    text = message.text()
    found = {}
    for label in ("Pause", "Slower", "Next lesson now", "I'm away"):
        match = re.search(rf"- {re.escape(label)}: ({PACE_LINK.pattern})", text)
        assert match, f"no {label!r} link in the footer of {message.subject!r}"
        assert match[1] in message.html()
        found[label] = match[1]
    return found


def state(server: LiveServer) -> tuple[Any, ...]:
    """What a pace choice changes: the enrollment's schedule and pace, its events, consents."""
    with server.services.sessions() as session:
        e = session.scalars(select(Enrollment)).one()
        events = session.scalar(select(func.count()).select_from(Event))
        consents = session.scalar(select(func.count()).select_from(ConsentRecord))
        return (e.due_at, e.slower, e.paused_since, e.resumes_at, e.status, events, consents)


def enrollment(server: LiveServer) -> Enrollment:
    with server.services.sessions() as session:
        return session.scalars(select(Enrollment)).one()


def local(moment: datetime | None) -> str:
    assert moment is not None
    return f"{moment.astimezone(KOLKATA):%a %Y-%m-%d %H:%M}"


def test_a_scanner_opening_every_footer_link_changes_nothing(
    server: LiveServer, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    welcome = welcomed(server, smtp_server, clock)
    before = state(server)
    links = pace_links(welcome)
    footer = re.findall(r"https?://[^\s/]+/(?:unsubscribe|preferences)/[\w.\-]+", welcome.text())
    assert len(footer) == 2
    for url in [*links.values(), *footer]:
        with urllib.request.urlopen(url) as answer:
            assert answer.status == 200
    assert state(server) == before


def test_a_reader_pauses_two_weeks_from_the_footer_and_the_course_resumes_that_morning(
    server: LiveServer, page: Any, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    welcome = welcomed(server, smtp_server, clock)  # Monday 2 March, 18:30 in Kolkata
    page.goto(pace_links(welcome)["Pause"])
    assert page.get_by_role("heading", level=1).inner_text() == "Pause this course"
    screenshot(page, "pace", "pause")
    page.get_by_label("For two weeks").check()
    page.get_by_role("button", name="Pause the course").click()
    notice = page.get_by_role("status").inner_text()
    assert "Paused for two weeks" in notice
    assert "Monday 16 March at 09:00 (Asia/Kolkata)" in notice
    screenshot(page, "pace", "paused")

    paused = enrollment(server)
    assert local(paused.due_at) == "Mon 2026-03-16 09:00"  # the window opens, their morning
    with server.services.sessions() as session:
        (event,) = session.scalars(select(Event).where(Event.kind == EventKind.PACE_PAUSED))
        assert "from the lesson email" in event.detail
        consent = session.scalars(select(ConsentRecord).order_by(ConsentRecord.id.desc())).first()
        assert consent is not None and consent.source == "lesson email"
        assert consent.created_at == clock()

    dispatcher = server.services.dispatcher()
    assert paused.due_at is not None
    for day in range(13):  # a pass each day of the pause, inside the window: nothing goes
        clock.set(datetime(2026, 3, 3, 4, 0, tzinfo=UTC) + timedelta(days=day))
        dispatcher.run_pass(clock())
    assert len(smtp_server.to("ada@example.org")) == 1
    clock.set(paused.due_at)
    dispatcher.run_pass(clock())
    assert [m.subject for m in smtp_server.to("ada@example.org")][1:] == ["Lesson two"]


def test_next_lesson_now_arrives_in_the_next_pass(
    server: LiveServer, page: Any, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    welcome = welcomed(server, smtp_server, clock)
    page.goto(pace_links(welcome)["Next lesson now"])
    # 18:30 in Kolkata: outside the window, so the reader says when
    page.get_by_label("Right now").check()
    screenshot(page, "pace", "next-now")
    page.get_by_role("button", name="Send the next lesson now").click()
    assert "Next lesson now" in page.get_by_role("status").inner_text()
    clock.advance(minutes=1)
    server.services.dispatcher().run_pass(clock())
    subjects = [m.subject for m in smtp_server.to("ada@example.org")]
    assert subjects == ["Welcome, friend", "Lesson two"]
    # the lesson after counts its delay (3 days) from this send, in the window
    assert local(enrollment(server).due_at) == "Fri 2026-03-06 09:00"


def test_away_until_a_date_skips_no_lesson(
    server: LiveServer, page: Any, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    welcome = welcomed(server, smtp_server, clock)
    page.goto(pace_links(welcome)["I'm away"])
    page.get_by_label("I'm away until (the last day)").fill("2026-03-20")
    screenshot(page, "pace", "away")
    page.get_by_role("button", name="Hold my lessons until then").click()
    assert "Saturday 21 March at 09:00 (Asia/Kolkata)" in page.get_by_role("status").inner_text()
    advance_through_due_times(server.services, clock)
    sent = smtp_server.to("ada@example.org")
    assert [m.subject for m in sent] == ["Welcome, friend", "Lesson two", "Lesson three"]
    with server.services.sessions() as session:
        kinds = list(session.scalars(select(Event.kind).order_by(Event.id)))
    assert EventKind.PACE_AWAY in kinds


def test_a_choice_is_undone_from_the_same_page(
    server: LiveServer, page: Any, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    welcome = welcomed(server, smtp_server, clock)
    steady = enrollment(server).due_at
    assert local(steady) == "Thu 2026-03-05 09:00"  # 2 days after Monday 18:30, in the window
    page.goto(pace_links(welcome)["Slower"])
    page.get_by_role("button", name="Send my lessons slower").click()
    assert local(enrollment(server).due_at) == "Sat 2026-03-07 09:00"  # the delay twice
    page.get_by_role("button", name="Undo: back to the course's own pace").click()
    assert "Back to the course's own pace" in page.get_by_role("status").inner_text()
    screenshot(page, "pace", "undone")
    undone = enrollment(server)
    assert (undone.due_at, undone.slower) == (steady, False)
    with server.services.sessions() as session:
        kinds = [k for k in session.scalars(select(Event.kind)) if k.startswith("pace_")]
        sources = list(session.scalars(select(ConsentRecord.source).order_by(ConsentRecord.id)))
    assert kinds == [EventKind.PACE_SLOWER, EventKind.PACE_RESET]
    assert sources[-2:] == ["lesson email", "lesson email"]
