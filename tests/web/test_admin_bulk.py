"""Bulk actions on the readers a filter selects, and tags in the admin, over HTTP on SQLite
and PostgreSQL: the confirmation's number is the number changed, the filter selects
exactly its readers, the enrollment rules hold for a move, an erasure leaves nothing."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from drip.app import create_app
from drip.audience import bulk
from drip.audience.controls import pause
from drip.audience.leaving import suppress, unsubscribe
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.filters import Filters
from drip.store.models import (
    ConsentRecord,
    Delivery,
    Enrollment,
    Event,
    RateLimit,
    Subscriber,
    SubscriberTag,
)
from drip.store.ratelimit import hit
from tests.bulk import add_due_readers
from tests.conftest import CHEAP_HASHER, courses_beside_tiny, enroll, make_settings, tag
from tests.smtp import SmtpServer
from tests.web.test_admin_access import csrf_token, logged_in_client

NEXT = """title: "Next course"
promise: "Two more lessons after the tiny one."
sender: "Tiny Author <author@example.org>"
timezone: America/New_York
send_window: {start: "09:00", end: "11:00"}
"""


@pytest.fixture
def app(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Flask]:
    """The tiny course and a second one to move readers to, on each backend."""
    folder = courses_beside_tiny(
        tmp_path,
        {
            "next-course": {
                "sequence.yaml": NEXT,
                "01-hello.md": '---\nsubject: "Next: hello"\ndelay: 0\n---\nHello.\n',
            }
        },
    )
    application = create_app(
        make_settings(tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=folder),
        clock=clock,
        password_hasher=CHEAP_HASHER,
    )
    yield application
    application.extensions["drip"].engine.dispose()


@pytest.fixture
def svc(app: Flask) -> Services:
    services: Services = app.extensions["drip"]
    return services


@pytest.fixture
def web(app: Flask) -> FlaskClient:
    return logged_in_client(app)


def statuses(svc: Services, slug: str = "tiny") -> dict[str, str]:
    with svc.sessions() as session:
        return {
            email: str(status)
            for email, status in session.execute(
                select(Subscriber.email, Enrollment.status)
                .join(Enrollment)
                .where(Enrollment.sequence == slug)
            )
        }


def preview(web: FlaskClient, **form: str) -> tuple[int, str]:
    """Ask for the confirmation page; the number it says and its text."""
    token = csrf_token(web.get("/admin/readers").text)
    page = web.post("/admin/readers/bulk", data={"csrf_token": token, **form})
    assert page.status_code == 200, page.text
    text = html.unescape(page.text)
    match = re.search(r'name="expected" value="(\d+)"', text)
    return (int(match[1]) if match else 0), text


def confirm(web: FlaskClient, number: int, **form: str) -> str:
    """Press the confirmation's button; the message the readers list then shows."""
    token = csrf_token(web.get("/admin/readers").text)
    data = {"csrf_token": token, "expected": str(number), **form}
    response = web.post("/admin/readers/bulk/run", data=data)
    assert response.status_code == 302, response.text
    shown = html.unescape(web.get(response.headers["Location"]).text)
    flashed = re.search(r'<p class="flash \w+" role="status">([^<]*)</p>', shown)
    assert flashed, shown
    return flashed[1]


def test_pausing_the_active_readers_with_a_tag_pauses_exactly_the_number_confirmed(
    web: FlaskClient, svc: Services
) -> None:
    for name in ("ada", "bob", "cy", "dee", "eve"):
        enroll(svc, f"{name}@example.org")
    tag(svc, "ada@example.org", "vip")
    tag(svc, "bob@example.org", "vip")
    tag(svc, "cy@example.org", "vip")
    with svc.sessions() as session:  # cy is paused already: not counted again
        cy = session.scalars(
            select(Enrollment).join(Subscriber).where(Subscriber.email == "cy@example.org")
        ).one()
        pause(session, cy, svc.clock(), "by hand")
        session.commit()
    filters = {"sequence": "tiny", "status": "active", "tag": "vip"}

    number, text = preview(web, action="pause", **filters)
    message = confirm(web, number, action="pause", **filters)

    assert number == 2
    assert "This will pause 2 readers of tiny, with status active, tagged vip." in text
    assert message == "Paused 2 readers of tiny, with status active, tagged vip."
    assert statuses(svc) == {
        "ada@example.org": "paused",
        "bob@example.org": "paused",
        "cy@example.org": "paused",
        "dee@example.org": "active",
        "eve@example.org": "active",
    }
    with svc.sessions() as session:
        paused = session.scalars(select(Event.detail).where(Event.kind == "paused")).all()
    assert sorted(paused) == ["by hand", *["paused by ops@example.org (bulk)"] * 2]


def test_resuming_every_reader_resumes_the_paused_ones_due_now_and_never_a_suppressed_one(
    web: FlaskClient, svc: Services
) -> None:
    for name in ("ada", "bob", "cy"):
        enroll(svc, f"{name}@example.org")
    with svc.sessions() as session:
        for enrollment in session.scalars(select(Enrollment)):
            pause(session, enrollment, svc.clock(), "by hand")
        suppress(
            session,
            session.scalars(select(Subscriber).where(Subscriber.email == "cy@example.org")).one(),
            svc.clock(),
            "bounced",
        )
        session.commit()

    number, _ = preview(web, action="resume")
    message = confirm(web, number, action="resume")

    assert number == 2
    assert message == "Resumed 2 enrollments of every sequence."
    assert statuses(svc) == {
        "ada@example.org": "active",
        "bob@example.org": "active",
        "cy@example.org": "suppressed",
    }
    with svc.sessions() as session:
        due = session.scalars(select(Enrollment.due_at).where(Enrollment.status == "active")).all()
    assert due and all(d == svc.clock() for d in due)


def test_a_move_enrolls_neither_a_suppressed_reader_nor_one_who_left_everything(
    web: FlaskClient, svc: Services
) -> None:
    ada = enroll(svc, "ada@example.org")  # confirmed: starts the next course at once
    enroll(svc, "dee@example.org", confirmed=False)  # unconfirmed: gets its confirmation
    enroll(svc, "bob@example.org")
    cy = enroll(svc, "cy@example.org")
    enroll(svc, "eve@example.org")
    enroll(svc, "eve@example.org", "next-course")  # already there: left as she is
    with svc.sessions() as session:
        bob = session.scalars(select(Subscriber).where(Subscriber.email == "bob@example.org")).one()
        suppress(session, bob, svc.clock(), "bounced")
        unsubscribe(session, cy, svc.clock(), everything=True)
        session.commit()

    number, text = preview(web, action="move", target="next-course", sequence="tiny")
    message = confirm(web, number, action="move", target="next-course", sequence="tiny")

    assert number == 2
    assert "This will move 2 readers of tiny to next-course." in text
    assert message == "Moved 2 readers of tiny to next-course."
    assert statuses(svc, "next-course") == {
        "ada@example.org": "active",
        "dee@example.org": "pending",
        "eve@example.org": "active",
    }
    assert statuses(svc) == {
        "ada@example.org": "unsubscribed",
        "dee@example.org": "unsubscribed",
        "bob@example.org": "suppressed",
        "cy@example.org": "unsubscribed",
        "eve@example.org": "active",
    }
    with svc.sessions() as session:
        moved = session.scalars(
            select(ConsentRecord.source)
            .join(Enrollment, Enrollment.id == ConsentRecord.enrollment_id)
            .where(Enrollment.sequence == "next-course", Enrollment.subscriber_id != 0)
            .order_by(ConsentRecord.id)
        ).all()
        left = session.scalar(
            select(Event.detail).where(Event.enrollment_id == ada, Event.kind == "unsubscribed")
        )
    assert moved[-2:] == ["moved from tiny by ops@example.org"] * 2
    assert left == "moved to next-course by ops@example.org"


def test_tagging_by_sequence_tags_only_that_sequences_readers_and_untagging_takes_it_back(
    web: FlaskClient, svc: Services
) -> None:
    enroll(svc, "ada@example.org")
    enroll(svc, "bob@example.org", "next-course")
    enroll(svc, "cy@example.org", "next-course")
    tag(svc, "cy@example.org", "webinar")  # has it already: not counted

    number, _ = preview(web, action="tag", bulk_tag="Webinar", sequence="next-course")
    message = confirm(web, number, action="tag", bulk_tag="webinar", sequence="next-course")

    assert (number, message) == (1, "Tagged 1 reader of next-course with webinar.")
    with svc.sessions() as session:
        tagged = session.execute(
            select(Subscriber.email, SubscriberTag.source)
            .join(SubscriberTag)
            .order_by(Subscriber.email)
        ).all()
    assert tagged == [
        ("bob@example.org", "admin (bulk, by ops@example.org)"),
        ("cy@example.org", "test"),
    ]
    listed = web.get("/admin/readers?tag=webinar").text
    assert "bob@example.org" in listed and "cy@example.org" in listed
    assert "ada@example.org" not in listed
    assert '<span class="muted">2 enrollments</span>' in listed  # the pager's total

    number, _ = preview(web, action="untag", bulk_tag="webinar", tag="webinar")
    message = confirm(web, number, action="untag", bulk_tag="webinar", tag="webinar")
    assert (number, message) == (
        2,
        "Removed the tag webinar from 2 readers of every sequence, tagged webinar.",
    )
    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(SubscriberTag)) == 0
        assert len(session.scalars(select(Event).where(Event.kind == "untagged")).all()) == 2


def test_a_bad_tag_or_a_missing_target_is_refused_with_what_to_fix(
    web: FlaskClient, svc: Services
) -> None:
    enroll(svc, "ada@example.org")
    token = csrf_token(web.get("/admin/readers").text)
    for form, expected in [
        (
            {"action": "tag", "bulk_tag": "not a tag!"},
            "Nothing done: tag: 'not a tag!' is not a tag",
        ),
        ({"action": "move", "target": ""}, "Nothing done: move to: choose a sequence"),
        ({"action": "explode"}, "Nothing done: action: 'explode' is not one of"),
    ]:
        response = web.post(
            "/admin/readers/bulk", data={"csrf_token": token, **form}, follow_redirects=True
        )
        assert expected in html.unescape(response.text)
    assert statuses(svc) == {"ada@example.org": "active"}


def test_a_bulk_erase_wants_the_number_typed_and_leaves_nothing_of_those_readers(
    web: FlaskClient, svc: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    for name in ("ada", "bob", "cy"):
        enroll(svc, f"{name}@example.org")
    clock.advance(hours=1)  # into the morning window
    svc.dispatcher().run_pass(clock())
    tag(svc, "ada@example.org", "gone")
    tag(svc, "bob@example.org", "gone")
    number, text = preview(web, action="erase", tag="gone")
    assert (
        number == 2
        and "This will erase 2 readers of every sequence, tagged gone and everything about them."
        in text
    )

    refused = confirm(web, number, action="erase", tag="gone", typed="3")
    assert refused == "Nothing erased: type the number of readers (2) to confirm."
    message = confirm(web, number, action="erase", tag="gone", typed="2")

    assert message == "Erased 2 readers of every sequence, tagged gone and everything about them."
    with svc.sessions() as session:
        assert session.scalars(select(Subscriber.email)).all() == ["cy@example.org"]
        owners = session.scalars(select(Enrollment.subscriber_id).join(Delivery)).all()
        assert len(owners) == 1  # cy's welcome only
        assert session.scalar(select(func.count()).select_from(ConsentRecord)) == 1
        assert (
            session.scalar(
                select(func.count()).select_from(Event).where(Event.subscriber_id != owners[0])
            )
            == 0
        )


@pytest.mark.parametrize("action", ["tag", "erase"])
def test_a_large_selection_goes_on_page_by_page_until_every_reader_is_changed(
    web: FlaskClient, svc: Services, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    for n in range(5):
        enroll(svc, f"reader{n}@example.org")
    monkeypatch.setattr(bulk, "BATCH", 2)
    monkeypatch.setattr(bulk, "BUDGET", 0.0)  # one batch per request
    number, _ = preview(web, action=action, bulk_tag="cohort-1")
    token = csrf_token(web.get("/admin/readers").text)
    form: dict[str, Any] = {
        "csrf_token": token,
        "action": action,
        "bulk_tag": "cohort-1",
        "expected": str(number),
        "typed": str(number),
    }
    seen = []
    response = web.post("/admin/readers/bulk/run", data=form)
    while response.status_code == 200:
        page = html.unescape(response.text)
        assert "data-continue" in page  # admin.js submits it; without script, a button
        seen.append(re.search(r'id="bulk-progress-text">([^<]*)<', page)[1])  # type: ignore[index]
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
        response = web.post("/admin/readers/bulk/run", data=fields)
    assert response.status_code == 302
    assert seen == ["2 of about 5 done; the rest follow.", "4 of about 5 done; the rest follow."]
    shown = html.unescape(web.get("/admin/readers").text)
    with svc.sessions() as session:
        if action == "tag":
            assert "Tagged 5 readers of every sequence with cohort-1." in shown
            assert session.scalar(select(func.count()).select_from(SubscriberTag)) == 5
        else:
            assert "Erased 5 readers of every sequence and everything about them." in shown
            assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_the_export_link_streams_only_the_rows_the_filter_selects(
    web: FlaskClient, svc: Services
) -> None:
    for name in ("ada", "bob", "cy"):
        enroll(svc, f"{name}@example.org")
    tag(svc, "bob@example.org", "vip")
    page = web.get("/admin/readers?tag=vip").text
    assert 'href="/admin/readers/export.csv?tag=vip"' in page
    rows = list(csv.DictReader(io.StringIO(web.get("/admin/readers/export.csv?tag=vip").text)))
    assert [(r["email"], r["sequence"]) for r in rows] == [("bob@example.org", "tiny")]


def test_the_reader_page_adds_and_removes_a_tag_and_shows_when_and_how_it_came(
    web: FlaskClient, svc: Services
) -> None:
    enroll(svc, "ada@example.org")
    with svc.sessions() as session:
        reader_id = session.scalars(select(Subscriber.id)).one()
    url = f"/admin/readers/{reader_id}"
    token = csrf_token(web.get(url).text)

    added = web.post(
        f"{url}/tags", data={"csrf_token": token, "tag": "Booked-A-Call"}, follow_redirects=True
    )
    page = html.unescape(added.text)
    assert "Tag booked-a-call added." in page
    assert '<span class="badge tag">booked-a-call</span>' in page
    assert "admin (by ops@example.org) · 2026-03-02" in page
    bad = web.post(
        f"{url}/tags", data={"csrf_token": token, "tag": "no spaces"}, follow_redirects=True
    )
    assert "Tag not added: 'no spaces' is not a tag" in html.unescape(bad.text)
    removed = web.post(
        f"{url}/tags", data={"csrf_token": token, "remove": "booked-a-call"}, follow_redirects=True
    )
    page = html.unescape(removed.text)

    assert "Tag booked-a-call removed." in page and "No tags." in page
    history = page[page.index('id="tag-history"') :]
    assert history.index("Tagged") < history.index("Untagged")
    assert "booked-a-call (admin (by ops@example.org))" in history


def test_erasing_a_thousand_readers_at_once_takes_their_rate_limit_counters_too(
    svc: Services, clock: FrozenClock
) -> None:
    addresses = add_due_readers(svc.engine, 1_200, clock())
    with svc.sessions() as session:
        for address in (addresses[0], addresses[999], addresses[1_100]):
            hit(session, f"signup:address:{address}", 5, clock())
        hit(session, "signup:ip:192.0.2.1", 5, clock())
        session.commit()
        order = bulk.Order("erase", Filters())
        first = bulk.step(
            session, svc.content.library(), svc.settings, order, after=0, now=clock(), who="t"
        )
        assert first.changed == 1_000 and first.after is not None
        keys = session.scalars(select(RateLimit.key).order_by(RateLimit.key)).all()
        assert keys == [f"signup:address:{addresses[1_100]}", "signup:ip:192.0.2.1"]
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 200
