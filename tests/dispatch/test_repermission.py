"""Engagement and re-permission, end to end: a reader who clicks nothing across six
lessons gets exactly one "Still want these?"; "keep them coming" keeps them engaged; no
answer for M days stops their broadcasts and pauses their courses, and a click brings
them back. Opens (a scanner fetching the pixel and every link) change nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.app import create_app
from drip.audience.tags import add_tags
from drip.core.clock import FrozenClock
from drip.dispatch.broadcasts import BroadcastError, parse_broadcast, schedule
from drip.dispatch.outcome import Kind
from drip.ops.timeline import timeline
from drip.services import Services
from drip.store.models import (
    BroadcastRecipient,
    Engagement,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    Subscriber,
)
from tests.conftest import courses_beside_tiny, enroll, make_settings
from tests.smtp import SmtpServer

DAILY = """title: "Daily course"
promise: "A lesson a day."
sender: "Tiny Author <author@example.org>"
timezone: America/New_York
send_window: {start: "09:00", end: "11:00"}
double_opt_in: false
track_links: true
track_opens: true
"""
QUESTION = "Still want these?"
SCANNER = {"User-Agent": "Mozilla/5.0 (scanner)", "Accept": "text/html"}
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux)", "Accept": "text/html,*/*"}


def daily_course(lessons: int = 60, extra: str = "") -> dict[str, str]:
    files = {"sequence.yaml": DAILY + extra}
    for number in range(1, lessons + 1):
        files[f"{number:02d}-day-{number}.md"] = (
            f'---\nsubject: "Day {number}"\ndelay: {0 if number == 1 else "1d"}\n---\n'
            f"Today's reading: [the article](https://example.org/day/{number}).\n"
        )
    return files


@pytest.fixture
def clock() -> FrozenClock:
    """Monday 2 March 2026, 09:00 in New York: inside the course's window."""
    return FrozenClock(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))


def make_app(tmp_path: Path, url: str, smtp: SmtpServer, clock: FrozenClock, extra: str) -> Flask:
    folder = courses_beside_tiny(tmp_path, {"daily": daily_course(extra=extra)})
    app = create_app(
        make_settings(tmp_path, url, smtp_url=smtp.url, sequences_dir=folder), clock=clock
    )
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Flask]:
    application = make_app(tmp_path, backend_url, smtp_server, clock, "")
    yield application
    application.extensions["drip"].engine.dispose()


def svc_of(app: Flask) -> Services:
    svc: Services = app.extensions["drip"]
    return svc


def run_days(svc: Services, clock: FrozenClock, days: float) -> None:
    """A pass every twelve hours: at 09:00 (in the window) and 21:00 New York time."""
    for _ in range(int(days * 2)):
        svc.dispatcher().run_pass(clock())
        clock.advance(hours=12)


def reader(svc: Services, email: str = "ada@example.org") -> Subscriber:
    with svc.sessions() as session:
        found = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
        session.expunge(found)
        return found


def kinds(svc: Services, email: str = "ada@example.org") -> list[EventKind]:
    with svc.sessions() as session:
        return list(
            session.scalars(
                select(Event.kind)
                .join(Subscriber, Subscriber.id == Event.subscriber_id)
                .where(Subscriber.email == email)
                .order_by(Event.id)
            )
        )


def questions(smtp: SmtpServer, email: str = "ada@example.org") -> list[str]:
    return [m.text() for m in smtp.to(email) if m.subject == QUESTION]


def link(text: str, purpose: str) -> str:
    found = re.search(rf"http://drip\.test(/{purpose}/[A-Za-z0-9._-]+)", text)
    assert found, text
    return found[1]


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found[1]


def press(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200
    answer = client.post(path, data={"csrf_token": csrf(page.text)})
    assert answer.status_code == 200, answer.text
    return answer.text


def test_a_reader_who_clicks_nothing_across_six_lessons_gets_exactly_one_question(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    enroll(svc, "ada@example.org", "daily")
    enroll(svc, "bo@example.org", "daily")
    run_days(svc, clock, 5)  # five lessons each; Bo clicks one of them
    lesson = next(m for m in smtp_server.to("bo@example.org") if m.subject == "Day 5")
    app.test_client().get(link(lesson.text(), "l"), headers=BROWSER)
    run_days(svc, clock, 3)
    assert reader(svc).engagement == Engagement.QUIET
    assert len(questions(smtp_server)) == 1
    assert reader(svc, "bo@example.org").engagement == Engagement.ENGAGED
    assert questions(smtp_server, "bo@example.org") == []
    run_days(svc, clock, 10)  # more lessons, no answer: still the one question
    assert len(questions(smtp_server)) == 1
    assert kinds(svc).count(EventKind.WENT_QUIET) == 1
    assert kinds(svc).count(EventKind.REPERMISSION_SENT) == 1


def test_keep_them_coming_keeps_the_reader_engaged_and_a_get_changes_nothing(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    enroll(svc, "ada@example.org", "daily")
    run_days(svc, clock, 8)
    (question,) = questions(smtp_server)
    keep = link(question, "keep")
    client = app.test_client()
    for _ in range(3):  # a scanner opening the link, twice, then a person's browser
        assert client.get(keep, headers=SCANNER).status_code == 200
    assert reader(svc).engagement == Engagement.QUIET
    assert "keep coming</h1>" in press(client, keep)
    assert reader(svc).engagement == Engagement.ENGAGED
    assert EventKind.KEPT in kinds(svc)
    run_days(svc, clock, 5)  # five more lessons, still no click: engaged, lessons go on
    assert reader(svc).engagement == Engagement.ENGAGED
    assert len(questions(smtp_server)) == 1
    run_days(svc, clock, 3)  # six lessons since the answer: a new quiet spell, a new question
    assert reader(svc).engagement == Engagement.QUIET
    assert len(questions(smtp_server)) == 2
    assert EventKind.GONE not in kinds(svc)


def test_no_answer_for_m_days_pauses_the_courses_and_a_click_brings_the_reader_back(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    enroll(svc, "ada@example.org", "daily")
    run_days(svc, clock, 8)
    assert len(questions(smtp_server)) == 1
    run_days(svc, clock, 31)
    assert reader(svc).engagement == Engagement.GONE
    with svc.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        assert enrollment.status == EnrollmentStatus.PAUSED
    sent = len(smtp_server.to("ada@example.org"))
    run_days(svc, clock, 5)
    assert len(smtp_server.to("ada@example.org")) == sent  # nothing while gone
    old_lesson = next(m for m in smtp_server.to("ada@example.org") if m.subject == "Day 2")
    app.test_client().get(link(old_lesson.text(), "l"), headers=BROWSER)
    assert reader(svc).engagement == Engagement.ENGAGED
    run_days(svc, clock, 1)
    with svc.sessions() as session:
        assert session.scalars(select(Enrollment)).one().status == EnrollmentStatus.ACTIVE
    assert len(smtp_server.to("ada@example.org")) > sent  # the course went on
    assert kinds(svc)[-6:].count(EventKind.RESUMED) == 1


def test_opens_and_a_scanner_fetching_every_link_never_change_a_state(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    """Each lesson: a link scanner fetches the pixel and every link as it arrives, and
    Apple Mail's proxy opens the pixel hours later with a browser's headers."""
    svc = svc_of(app)
    enroll(svc, "ada@example.org", "daily")
    client = app.test_client()
    seen = opens = 0
    for _ in range(16):
        svc.dispatcher().run_pass(clock())
        new = smtp_server.to("ada@example.org")[seen:]
        seen += len(new)
        paths = [p for m in new for p in re.findall(r'http://drip\.test(/[lo]/[^"\s)]+)', m.html())]
        for path in paths:  # the scanner, at once
            client.get(path, headers=SCANNER)
        clock.advance(hours=6)
        for path in paths:  # the pixel again, opened by the mail app's proxy
            if path.startswith("/o/"):
                opens += client.get(path, headers=BROWSER).status_code == 200
        clock.advance(hours=6)
    assert seen >= 8 and opens >= 8
    assert reader(svc).engagement == Engagement.QUIET
    assert EventKind.CLICKED not in kinds(svc)
    assert len(questions(smtp_server)) == 1


def test_a_course_with_repermission_false_never_asks(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    app = make_app(tmp_path, sqlite_url, smtp_server, clock, "repermission: false\n")
    svc = svc_of(app)
    enroll(svc, "ada@example.org", "daily")
    run_days(svc, clock, 45)
    assert reader(svc).engagement == Engagement.QUIET  # quiet, counted, never asked
    assert questions(smtp_server) == []
    assert EventKind.GONE not in kinds(svc)
    app.extensions["drip"].engine.dispose()


def test_stop_on_the_question_leaves_every_course_after_one_button(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    enroll(svc, "ada@example.org", "daily")
    run_days(svc, clock, 8)
    (question,) = questions(smtp_server)
    client = app.test_client()
    leave = link(question, "leave")
    client.get(leave, headers=SCANNER)
    with svc.sessions() as session:
        assert session.scalars(select(Enrollment)).one().status == EnrollmentStatus.ACTIVE
    assert "You're unsubscribed" in press(client, leave)
    with svc.sessions() as session:
        assert session.scalars(select(Enrollment)).one().status == EnrollmentStatus.UNSUBSCRIBED
    assert client.get("/keep/forged-token").status_code == 400


def broadcast_to(svc: Services, clock: FrozenClock, engagement: str = "") -> list[str]:
    """Schedule a broadcast to the daily course (with `engagement:` if given): its readers."""
    text = '---\nsubject: "News"\nto: daily\n' + (
        f"engagement: {engagement}\n" if engagement else ""
    )
    library = svc.content.library()
    spec = parse_broadcast(text + "---\nSome news.\n", Path("news.md"), library)
    with svc.sessions() as session:
        broadcast = schedule(session, library, spec, clock(), clock())
        return sorted(
            session.scalars(
                select(Subscriber.email)
                .join(BroadcastRecipient, BroadcastRecipient.subscriber_id == Subscriber.id)
                .where(BroadcastRecipient.broadcast_id == broadcast.id)
            )
        )


def test_broadcasts_go_to_engaged_readers_by_default_and_never_to_the_gone(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    for email in ("ada@example.org", "bo@example.org"):
        enroll(svc, email, "daily")
    run_days(svc, clock, 5)
    lesson = next(m for m in smtp_server.to("bo@example.org") if m.subject == "Day 5")
    app.test_client().get(link(lesson.text(), "l"), headers=BROWSER)
    run_days(svc, clock, 3)  # Ada quiet, Bo engaged
    assert broadcast_to(svc, clock) == ["bo@example.org"]
    assert broadcast_to(svc, clock, "all") == ["ada@example.org", "bo@example.org"]
    run_days(svc, clock, 31)  # Ada never answered; Bo went quiet and was asked meanwhile
    assert reader(svc).engagement == Engagement.GONE
    assert "ada@example.org" not in broadcast_to(svc, clock, "all")


def test_a_broadcast_with_an_unknown_engagement_is_refused_with_what_to_write(
    app: Flask,
) -> None:
    library = svc_of(app).content.library()
    text = '---\nsubject: "News"\nto: daily\nengagement: everyone\n---\nSome news.\n'
    with pytest.raises(
        BroadcastError, match=re.escape("engagement is engaged (the default) or all")
    ):
        parse_broadcast(text, Path("news.md"), library)


def test_a_broadcast_scheduled_before_a_reader_was_gone_skips_them_at_their_turn(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    enroll(svc, "ada@example.org", "daily")
    run_days(svc, clock, 8)  # quiet and asked
    library = svc.content.library()
    text = '---\nsubject: "News"\nto: daily\nengagement: all\n---\nSome news.\n'
    spec = parse_broadcast(text, Path("news.md"), library)
    with svc.sessions() as session:
        schedule(session, library, spec, clock() + timedelta(days=35), clock())
        assert session.scalars(select(BroadcastRecipient.status)).all() == ["queued"]
    run_days(svc, clock, 37)
    assert reader(svc).engagement == Engagement.GONE
    assert [m for m in smtp_server.to("ada@example.org") if m.subject == "News"] == []
    with svc.sessions() as session:
        assert session.scalars(select(BroadcastRecipient.last_error)).one() == (
            "the reader is gone: no answer to “Still want these?”"
        )


def test_each_step_is_on_the_courses_timeline_in_words(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    enroll(svc, "ada@example.org", "daily")
    run_days(svc, clock, 39)
    with svc.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        texts = [entry.text for entry in timeline(session, enrollment)]
    steps = ["Went quiet", "Asked “Still want these?”", "Gone: no answer to “Still want these?”"]
    assert [text for text in texts if text in steps] == steps
    assert "Paused" in texts[texts.index(steps[-1]) :]


def test_the_dry_run_names_the_question_a_pass_would_send_and_sends_nothing(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    enroll(svc, "ada@example.org", "daily")
    run_days(svc, clock, 6)  # quiet since the last pass, at night: not asked yet
    assert reader(svc).engagement == Engagement.QUIET and questions(smtp_server) == []
    report = svc.dispatcher().run_pass(clock(), dry_run=True)
    assert [o.lesson for o in report.outcomes if o.kind == Kind.REPERMISSION] == ["repermission"]
    assert questions(smtp_server) == [] and reader(svc).repermission_at is None
    svc.dispatcher().run_pass(clock())
    assert len(questions(smtp_server)) == 1


def test_a_tag_link_pressed_or_a_reply_on_the_timeline_makes_a_quiet_reader_engaged(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    for email in ("ada@example.org", "bo@example.org", "cy@example.org"):
        enroll(svc, email, "daily")
    run_days(svc, clock, 8)
    with svc.sessions() as session:
        ada, bo, cy = session.scalars(select(Subscriber).order_by(Subscriber.id)).all()
        add_tags(session, ada, ["has-dates"], clock(), "link in daily")  # a tag_link pressed
        session.add(Event(subscriber_id=bo.id, kind=EventKind.REPLIED, at=clock(), detail=""))
        add_tags(session, cy, ["vip"], clock(), "admin (by ops@example.org)")  # not Cy's doing
        session.commit()
    svc.dispatcher().run_pass(clock())
    assert reader(svc, "ada@example.org").engagement == Engagement.ENGAGED
    assert reader(svc, "bo@example.org").engagement == Engagement.ENGAGED
    assert reader(svc, "cy@example.org").engagement == Engagement.QUIET


def test_keep_them_coming_from_the_old_email_brings_a_gone_reader_back(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    enroll(svc, "ada@example.org", "daily")
    run_days(svc, clock, 39)
    assert reader(svc).engagement == Engagement.GONE
    (question,) = questions(smtp_server)
    assert "Thank you" in press(app.test_client(), link(question, "keep"))
    assert reader(svc).engagement == Engagement.ENGAGED
    with svc.sessions() as session:
        assert session.scalars(select(Enrollment.status)).one() == EnrollmentStatus.ACTIVE
    sent = len(smtp_server.to("ada@example.org"))
    run_days(svc, clock, 1)
    assert len(smtp_server.to("ada@example.org")) == sent + 1  # the next lesson, not a burst
