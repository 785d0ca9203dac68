"""The admin's Broadcasts page: write a broadcast, see it as a reader will, send yourself a
[TEST] copy, see its audience, schedule it, and the worker sends it to exactly that
audience (after a restart too) while its progress JSON counts the sends."""

from __future__ import annotations

import html
import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.app import create_app
from drip.audience.segments import save
from drip.core.clock import FrozenClock
from drip.deliverability.bounces import Report, record_bounce
from drip.dispatch.broadcasts import BroadcastFile, schedule
from drip.services import Services, build_services
from drip.store.models import (
    AuditEntry,
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    RecipientStatus,
)
from tests.conftest import CHEAP_HASHER, courses_beside_tiny, enroll, json_body, make_settings, tag
from tests.dispatch.test_broadcasts import OTHER_COURSE
from tests.smtp import SmtpServer
from tests.web.test_admin_access import OPERATOR, csrf_token, logged_in_client

BODY = 'Hi {{ first_name|default("there") }},\n\nA new post is up. [Leave]({{ unsubscribe_url }})\n'


@pytest.fixture
def courses(tmp_path: Path) -> Path:
    return courses_beside_tiny(tmp_path, {"other": OTHER_COURSE})


@pytest.fixture
def app(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock, courses: Path
) -> Iterator[Flask]:
    application = create_app(
        make_settings(tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=courses),
        clock=clock,
        password_hasher=CHEAP_HASHER,
    )
    application.config["TESTING"] = True
    yield application
    application.extensions["drip"].engine.dispose()


@pytest.fixture
def svc(app: Flask) -> Services:
    services: Services = app.extensions["drip"]
    return services


@pytest.fixture
def web(app: Flask) -> FlaskClient:
    return logged_in_client(app)


@pytest.fixture
def readers(svc: Services) -> None:
    enroll(svc, "ada@example.org", "tiny", first_name="Ada")
    enroll(svc, "bo@example.org", "tiny")  # no tag: not in the audience
    enroll(svc, "cy@example.org", "other", timezone="Asia/Kolkata")
    enroll(svc, "di@example.org", "tiny", confirmed=False)  # never confirmed
    for email in ("ada@example.org", "cy@example.org", "di@example.org"):
        tag(svc, email, "has-dates")


def news(svc: Services, smtp_server: SmtpServer) -> list[str]:
    return sorted(r for m in smtp_server.messages if m.subject == "News" for r in m.recipients)


@pytest.mark.slow
def test_an_operator_writes_previews_tests_schedules_and_watches_a_broadcast_go_out(
    web: FlaskClient,
    svc: Services,
    readers: None,
    clock: FrozenClock,
    smtp_server: SmtpServer,
) -> None:
    token = csrf_token(web.get("/admin/broadcasts/").text)
    written = web.post(
        "/admin/broadcasts/",
        data={
            "csrf_token": token,
            "subject": "News",
            "preheader": "A new post",
            "body": BODY,
            "to": ["tiny", "other"],
            "readers": "both",
            "tags": "has-dates",
        },
    )
    assert written.status_code == 302
    page_url = written.location
    page = web.get(page_url).text
    shown = html.unescape(page)
    assert re.search(r'<strong id="audience-count">2</strong>', page)
    assert "e.g. ada@example.org, cy@example.org" in page
    assert "Hi Alex," in shown  # rendered by the renderer that sends, for the sample reader
    assert "/sample/preview/broadcast" in shown and "/stop/" not in shown  # nobody's links

    tested = web.post(f"{page_url}/test", data={"csrf_token": token})
    (test_copy,) = smtp_server.to(OPERATOR)
    assert tested.status_code == 302
    assert test_copy.subject == "[TEST] News"
    assert "/sample/test/broadcast" in test_copy.text()
    assert news(svc, smtp_server) == []

    past = web.post(
        f"{page_url}/schedule",
        data={"csrf_token": token, "at": "2020-01-01T09:00", "zone": "America/New_York"},
    )
    assert "is in the past" in web.get(past.location).text
    web.post(
        f"{page_url}/schedule",
        data={"csrf_token": token, "at": "2026-03-02T10:00", "zone": "America/New_York"},
    )
    json_url = f"{page_url}.json"
    waiting = json_body(web.get(json_url))
    assert (waiting["status"], waiting["total"], waiting["queued"], waiting["sent"]) == (
        "scheduled",
        2,
        2,
        0,
    )
    assert 'data-progress-url="' + json_url in web.get(page_url).text

    restarted = build_services(svc.settings, clock)  # another process: the worker
    for _ in range(60):  # a day and a half: Kolkata's window comes the next day
        restarted.dispatcher().run_pass(clock())
        clock.advance(minutes=30)
    restarted.engine.dispose()

    with svc.sessions() as session:  # cy's provider reports her address bouncing since
        record_bounce(session, Report("hard", "cy@example.org", "drip", "test:cy"), clock())
        session.commit()
    done = json_body(web.get(json_url))
    assert news(svc, smtp_server) == ["ada@example.org", "cy@example.org"]
    assert (done["status"], done["sent"], done["queued"], done["failed"]) == ("done", 2, 0, 0)
    assert (done["bounced"], done["clicked"], done["tracked"]) == (1, 0, False)
    assert "[TEST]" not in {m.subject for m in smtp_server.messages if OPERATOR not in m.recipients}


def test_a_broadcast_with_mistakes_comes_back_with_every_problem_and_nothing_lost(
    web: FlaskClient, svc: Services
) -> None:
    token = csrf_token(web.get("/admin/broadcasts/").text)
    answer = web.post(
        "/admin/broadcasts/",
        data={
            "csrf_token": token,
            "subject": "",
            "body": "Hi {{ firstname }}, a long draft I do not want to type again.",
            "tags": "Not A Tag!",
        },
    )
    page = html.unescape(answer.text)
    assert answer.status_code == 400
    assert "missing subject" in page
    assert "missing to: the sequence(s) whose readers get it (or a segment)" in page
    assert "unknown variable 'firstname'" in page
    assert "a long draft I do not want to type again." in page  # the textarea keeps it
    with svc.sessions() as session:
        assert session.scalars(select(Broadcast)).all() == []


def test_an_uploaded_broadcast_file_to_a_segment_is_a_draft_until_scheduled_and_can_be_cancelled(
    web: FlaskClient, svc: Services, readers: None, clock: FrozenClock
) -> None:
    with svc.sessions() as session:
        save(session, "tagged", {"tags": ["has-dates"], "sequences": ["tiny"]}, clock(), "t")
        session.commit()
    token = csrf_token(web.get("/admin/broadcasts/").text)
    text = f'---\nsubject: "News"\nsegment: tagged\n---\n{BODY}'
    answer = web.post(
        "/admin/broadcasts/",
        data={"csrf_token": token, "file": (io.BytesIO(text.encode()), "news.md")},
        content_type="multipart/form-data",
    )
    page = web.get(answer.location).text
    assert re.search(r'<strong id="audience-count">1</strong>', page)  # ada: di never confirmed
    assert 'in the segment <span class="mono">tagged</span>' in page
    cancelled = web.post(f"{answer.location}/cancel", data={"csrf_token": token})
    with svc.sessions() as session:
        broadcast = session.scalars(select(Broadcast)).one()
        assert (broadcast.name, broadcast.status, broadcast.created_by) == (
            "news",
            BroadcastStatus.CANCELLED,
            OPERATOR,
        )
    assert cancelled.status_code == 302


def test_the_admin_export_takes_a_segment(
    web: FlaskClient, svc: Services, readers: None, clock: FrozenClock
) -> None:
    with svc.sessions() as session:
        save(session, "other-course", {"sequences": ["other"]}, clock(), "t")
        session.commit()
    assert "Download the segment" in web.get("/admin/import").text
    rows = web.get("/admin/export.csv?segment=other-course").text.splitlines()
    unknown = web.get("/admin/export.csv?segment=nope")
    assert [row.split(",")[0] for row in rows] == ["email", "cy@example.org"]
    assert unknown.status_code == 302
    assert "no segment named &#39;nope&#39;" in web.get(unknown.location).text


def write_draft(web: FlaskClient, token: str, **fields: object) -> str:
    """A draft written in the admin's form; its page's URL."""
    data = {"csrf_token": token, "subject": "News", "body": BODY, "to": ["tiny"], **fields}
    written = web.post("/admin/broadcasts/", data=data)
    assert written.status_code == 302
    return str(written.location)


def draft(svc: Services) -> tuple[str, str, str, dict[str, object]]:
    with svc.sessions() as session:
        b = session.scalars(select(Broadcast)).one()
        return b.subject, b.body, b.status, b.audience


def test_an_edited_draft_shows_its_new_preview_and_count_is_audited_and_goes_to_its_new_audience(
    web: FlaskClient, svc: Services, readers: None, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    token = csrf_token(web.get("/admin/broadcasts/").text)
    page_url = write_draft(web, token)  # ada and bo (di never confirmed)
    page = web.get(page_url).text
    assert re.search(r'<strong id="audience-count">2</strong>', page)
    assert 'id="edit-form"' in page and 'value="News"' in page  # prefilled with the draft
    assert 'value="tiny" checked' in page and 'value="other" >' in page

    edited = web.post(
        f"{page_url}/edit",
        data={
            "csrf_token": token,
            "subject": "Fresh news",
            "preheader": "Just out",
            "body": BODY.replace("A new post", "A fresher post"),
            "to": ["tiny", "other"],
            "readers": "both",
            "tags": "has-dates",
        },
    )
    assert (edited.status_code, edited.location) == (302, page_url)
    page = web.get(page_url).text
    shown = html.unescape(page)
    assert "The draft is saved." in page
    assert re.search(r'<strong id="audience-count">2</strong>', page)
    assert "e.g. ada@example.org, cy@example.org" in page  # bo has no tag: out; cy in
    assert "subject <strong>Fresh news</strong>" in page and "A fresher post" in shown
    assert 'value="has-dates"' in page and 'value="other" checked' in page
    with svc.sessions() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "edit broadcast")
        ).one()
        name = session.scalars(select(Broadcast.name)).one()
    assert (entry.operator_email, entry.target) == (OPERATOR, "broadcast 1")
    assert entry.before is not None and entry.after is not None
    assert "subject: News\n" in entry.before and "A new post" in entry.before
    assert "subject: Fresh news\n" in entry.after and "- has-dates" in entry.after
    assert "- other" in entry.after and "- other" not in entry.before
    assert name == "news"  # the draft keeps its name

    web.post(f"{page_url}/schedule", data={"csrf_token": token, "at": "", "zone": "UTC"})
    worker = build_services(svc.settings, clock)
    for _ in range(60):  # a day and a half: Kolkata's window comes the next day
        worker.dispatcher().run_pass(clock())
        clock.advance(minutes=30)
    worker.engine.dispose()
    fresh = sorted(
        r for m in smtp_server.messages if m.subject == "Fresh news" for r in m.recipients
    )
    assert fresh == ["ada@example.org", "cy@example.org"]
    assert news(svc, smtp_server) == []  # the old subject went to nobody
    assert (
        "A fresher post"
        in next(m for m in smtp_server.messages if m.subject == "Fresh news").text()
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"to": ["tiny", "nope"]}, "to: no usable sequence 'nope'"),
        (
            {"body": "Hi {{ frist_name }}, my long careful rewrite."},
            "unknown variable 'frist_name'",
        ),
        ({"segment": "gone"}, "no segment named 'gone'"),
    ],
)
def test_a_bad_edit_is_refused_with_its_problem_the_form_kept_and_the_draft_unchanged(
    web: FlaskClient, svc: Services, change: dict[str, object], problem: str
) -> None:
    token = csrf_token(web.get("/admin/broadcasts/").text)
    page_url = write_draft(web, token)
    saved = draft(svc)
    data = {"csrf_token": token, "subject": "Typed again", "body": BODY, "to": ["tiny"], **change}
    answer = web.post(f"{page_url}/edit", data=data)
    page = html.unescape(answer.text)
    assert answer.status_code == 400
    assert problem in page
    assert 'value="Typed again"' in page  # the form as typed, not as saved
    if "body" in change:
        assert "my long careful rewrite." in page
    assert draft(svc) == saved
    with svc.sessions() as session:
        assert (
            session.scalars(select(AuditEntry).where(AuditEntry.action == "edit broadcast")).all()
            == []
        )


def test_only_a_draft_can_be_edited(web: FlaskClient, svc: Services, readers: None) -> None:
    token = csrf_token(web.get("/admin/broadcasts/").text)
    page_url = write_draft(web, token)
    web.post(f"{page_url}/schedule", data={"csrf_token": token, "at": "", "zone": "UTC"})
    saved = draft(svc)
    assert saved[2] == BroadcastStatus.SCHEDULED
    assert 'id="edit-form"' not in web.get(page_url).text
    answer = web.post(
        f"{page_url}/edit",
        data={"csrf_token": token, "subject": "Too late", "body": BODY, "to": ["other"]},
    )
    assert answer.status_code == 302
    assert (
        "Not edited: the broadcast is scheduled; only a draft can be edited."
        in web.get(answer.location).text
    )
    assert draft(svc) == saved


def test_a_broadcast_scheduled_now_says_when_its_first_copies_go_out(
    web: FlaskClient, svc: Services, readers: None, clock: FrozenClock
) -> None:
    token = csrf_token(web.get("/admin/broadcasts/").text)
    form = {"csrf_token": token, "subject": "News", "body": BODY, "to": ["tiny"]}
    page_url = web.post("/admin/broadcasts/", data={**form, "readers": "both"}).location
    draft = web.get(page_url).text
    assert "To</dt><dd>active and finished readers of tiny" in draft
    assert '<select id="zone" name="zone" data-drip-timezone>' in draft  # picked, not typed
    assert "<option>America/New_York</option>" in draft
    web.post(f"{page_url}/schedule", data={"csrf_token": token, "at": "", "zone": "UTC"})
    page = web.get(page_url).text  # 13:00 UTC: the tiny course's window opens at 9 in New York
    assert "Next send window opens 14:00 UTC" in page
    clock.advance(hours=1)
    assert "Copies are going out now" in web.get(page_url).text
    svc.dispatcher().run_pass(clock())
    assert 'id="next-window"' not in web.get(page_url).text  # nothing waits any more


# A copy names the reader's own courses; a course whose folder is gone holds its copies.
TO_BOTH = BroadcastFile(
    "news", "News", "", "A new post. [Leave]({{ unsubscribe_url }})", ("tiny", "other"), "both", ()
)


def send_for_a_day(svc: Services, clock: FrozenClock) -> None:
    """Passes every half hour for a day: each course's window, in each zone, comes round."""
    for _ in range(48):
        svc.dispatcher().run_pass(clock())
        clock.advance(minutes=30)


def footer(text: str) -> str:
    return next(line for line in text.splitlines() if "signed up for" in line)


def test_a_broadcast_copy_names_only_the_courses_its_reader_joined(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enroll(svc, "ada@example.org", "tiny")
    enroll(svc, "cy@example.org", "other", timezone="Asia/Kolkata")
    enroll(svc, "bo@example.org", "tiny")
    enroll(svc, "bo@example.org", "other")
    with svc.sessions() as session:
        schedule(session, svc.content.library(), TO_BOTH, clock(), clock())

    send_for_a_day(svc, clock)

    (ada,) = [m for m in smtp_server.to("ada@example.org") if m.subject == "News"]
    (cy,) = [m for m in smtp_server.to("cy@example.org") if m.subject == "News"]
    (bo,) = [m for m in smtp_server.to("bo@example.org") if m.subject == "News"]
    assert "“Tiny course.”" in footer(ada.text()) and "Other course" not in ada.html()
    assert "“Other course.”" in footer(cy.text()) and "Tiny course" not in cy.html()
    assert "“Tiny course” and “Other course.”" in footer(bo.text())  # each title quoted
    assert {m.message["List-Id"] for m in (ada, cy, bo)} == {"<broadcasts.drip.test>"}


def test_a_gone_course_folder_holds_its_copies_with_the_reason_and_the_page_answers(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer, web: FlaskClient
) -> None:
    enroll(svc, "ada@example.org", "tiny")
    enroll(svc, "cy@example.org", "other", timezone="Asia/Kolkata")
    with svc.sessions() as session:
        broadcast_id = schedule(session, svc.content.library(), TO_BOTH, clock(), clock()).id
    shutil.rmtree(Path(svc.settings.sequences_dir) / "tiny")  # its first course

    send_for_a_day(svc, clock)

    assert [m.subject for m in smtp_server.to("cy@example.org")][-1] == "News"
    assert [m for m in smtp_server.to("ada@example.org") if m.subject == "News"] == []
    with svc.sessions() as session:
        held = session.scalars(
            select(BroadcastRecipient).where(BroadcastRecipient.status == RecipientStatus.QUEUED)
        ).all()
        assert len(held) == 1 and "tiny" in (held[0].last_error or "")
        assert session.get(Broadcast, broadcast_id) is not None
    page = web.get(f"/admin/broadcasts/{broadcast_id}")
    assert page.status_code == 200
    assert "1 reader: " in page.get_data(as_text=True)
    assert "tiny" in page.get_data(as_text=True).split('id="waiting-because"')[1][:400]
