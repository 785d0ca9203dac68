"""The admin's Segments page over HTTP, on SQLite and PostgreSQL: a segment made with the
form is the one the command line sees, a mistake is named beside its field and nothing is
saved, the list's counts are drip.audience.segments' counts, and the readers list, its bulk actions
and its export take `?segment=` and select exactly the segment's rows, a page at a time."""
# ruff: noqa: F811  (the fixtures imported from test_admin_bulk are parameters here)

from __future__ import annotations

import csv
import html
import io
import json
import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select, update

from drip.audience import segments
from drip.ops.operators import create_operator
from drip.services import Services
from drip.store import queries
from drip.store.filters import Filters
from drip.store.models import (
    AuditEntry,
    Enrollment,
    EnrollmentStatus,
    Role,
    Segment,
    Subscriber,
    SubscriberTag,
)
from drip.store.queries import Cursor
from tests.audience.test_segments import drip
from tests.bulk import add_due_readers
from tests.conftest import count, enroll, json_body, tag
from tests.web.test_admin_access import PASSWORD, csrf_token, log_in
from tests.web.test_admin_bulk import (  # noqa: F401  (fixtures: the app on both backends)
    app,
    confirm,
    preview,
    statuses,
    svc,
    web,
)


def token(web: FlaskClient) -> str:
    return csrf_token(web.get("/admin/segments/new").text)


def answers(svc: Services, email: str, **values: str) -> None:
    """Sign-up answers, as the sign-up form stores them."""
    with svc.sessions() as session:
        session.execute(
            update(Subscriber).where(Subscriber.email == email).values(attributes=values)
        )
        session.commit()


def readers_shown(web: FlaskClient, url: str) -> tuple[list[str], str]:
    """Every address the readers list shows for `url`, following its Older links to the
    end, and the total it says on the first page."""
    seen: list[str] = []
    first = web.get(url)
    assert first.status_code == 200, first.text
    total = re.search(r'<span class="muted">([\d,]+) enrollments?</span>', first.text)
    page = first.text
    while True:
        seen += re.findall(r'<a href="/admin/readers/\d+">([^<]+)</a>', page)
        older = re.search(r'<a href="([^"]+)" rel="next">Older</a>', page)
        if not older:
            break
        page = web.get(html.unescape(older[1])).text
    return seen, total[1] if total else ""


def four_readers(svc: Services) -> None:
    """ada and bo in tiny with vip, bo also in next-course; cy in tiny without; dee in
    next-course with vip."""
    enroll(svc, "ada@example.org")
    enroll(svc, "bo@example.org")
    enroll(svc, "bo@example.org", "next-course")
    enroll(svc, "cy@example.org")
    enroll(svc, "dee@example.org", "next-course")
    for email in ("ada@example.org", "bo@example.org", "dee@example.org"):
        tag(svc, email, "vip")


def test_a_segment_made_with_the_form_is_the_one_the_command_line_sees(
    web: FlaskClient, svc: Services
) -> None:
    four_readers(svc)
    answers(svc, "ada@example.org", exam_date="2026-05-01")
    form = {
        "csrf_token": token(web),
        "name": "VIP-soon",
        "sequences": ["tiny"],
        "status": ["active"],
        "tags": "vip, Has-Dates",
        "exam_before": "2026-09-01",
        "exam_after": "",
        "clicked_within_days": "",
        "no_lesson_within_days": "30",
    }

    saved = web.post("/admin/segments/new", data=form)
    shown = drip(svc, "segment", "show", "vip-soon")

    assert saved.status_code == 302 and saved.headers["Location"] == "/admin/segments/"
    expected = {
        "exam_before": "2026-09-01",
        "no_lesson_within_days": 30,
        "sequences": ["tiny"],
        "status": ["active"],
        "tags": ["vip", "has-dates"],
    }
    with svc.sessions() as session:
        made = segments.named(session, "vip-soon")
        assert made.definition == expected and made.created_by == "ops@example.org"
    assert shown.exit_code == 0 and json.dumps(expected, sort_keys=True) in shown.output
    listed = html.unescape(web.get("/admin/segments/").text)
    assert "Segment vip-soon saved: 1 reader now" in listed
    assert (
        "readers of tiny, active, tagged vip or has-dates, exam before 2026-09-01, "
        "no lesson in the last 30 days" in listed
    )


def test_a_bad_date_is_refused_beside_its_field_and_nothing_is_saved(
    web: FlaskClient, svc: Services
) -> None:
    form = {
        "csrf_token": token(web),
        "name": "soon",
        "tags": "vip",
        "exam_before": "2026-02-30",
        "lesson_within_days": "a week",
    }

    answer = web.post("/admin/segments/new", data=form)

    text = html.unescape(answer.text)
    assert answer.status_code == 400
    beside = re.search(r'<ul class="problems" id="problems-exam_before">(.*?)</ul>', text, re.S)
    assert beside and "'2026-02-30' is not a day such as 2026-09-15" in beside[1]
    assert 'id="exam_before" name="exam_before" value="2026-02-30" aria-invalid="true"' in text
    days = re.search(r'id="problems-lesson_within_days">(.*?)</ul>', text, re.S)
    assert days and "a whole number of days from 1 to 3650, not 'a week'" in days[1]
    assert 'name="tags" value="vip"' in text and 'name="name" value="soon"' in text  # kept
    assert "Not saved: 2 fields to fix" in text
    assert count(svc, Segment) == 0
    bad_name = web.post("/admin/segments/new", data={**form, "name": "Not a name!"})
    assert "is not a segment name: lowercase letters, digits and dashes" in html.unescape(
        re.search(r'id="problems-name">(.*?)</ul>', bad_name.text, re.S)[1]  # type: ignore[index]
    )
    assert count(svc, Segment) == 0


def test_the_count_button_counts_the_form_without_saving_it(
    web: FlaskClient, svc: Services
) -> None:
    four_readers(svc)
    before = count(svc, AuditEntry)

    answer = web.post(
        "/admin/segments/count",
        data={"csrf_token": token(web), "name": "vips", "tags": "vip", "editing": ""},
    )

    text = html.unescape(answer.text)
    assert answer.status_code == 200
    assert "3 readers now" in text and "(readers of any course, tagged vip)" in text
    assert "For instance ada@example.org, bo@example.org, dee@example.org" in text
    assert 'name="name" value="vips"' in text  # the form comes back to be saved
    assert count(svc, Segment) == 0 and count(svc, AuditEntry) == before


def test_the_list_counts_each_segment_as_drip_segments_does_and_links_to_its_uses(
    web: FlaskClient, svc: Services
) -> None:
    four_readers(svc)
    with svc.sessions() as session:
        segments.save(session, "vips", {"tags": ["vip"]}, svc.clock(), "cli")
        segments.save(
            session, "tiny-active", {"sequences": ["tiny"], "status": ["active"]}, svc.clock(), "t"
        )
        segments.save(session, "nobody", {"tags": ["none-has-it"]}, svc.clock(), "cli")
        session.commit()
        expected = {
            s.name: segments.members(session, s.definition, svc.clock()).count
            for s in session.scalars(select(Segment))
        }

    page = web.get("/admin/segments/").text
    asked = dict(re.findall(r'<tr data-segment="([^"]+)">.*?data-count="([^"]+)"', page, re.S))
    counted = {name: json_body(web.get(url))["count"] for name, url in asked.items()}

    assert counted == expected
    assert expected == {"vips": 3, "tiny-active": 3, "nobody": 0}
    assert 'href="/admin/readers?segment=vips">See these readers' in page
    assert 'href="/admin/export.csv?segment=vips">Export' in page
    assert 'href="/admin/broadcasts/?segment=vips#broadcast-form">Write a broadcast' in page
    broadcast = web.get("/admin/broadcasts/?segment=vips").text
    assert "<option selected>vips</option>" in broadcast


def test_the_readers_list_with_a_segment_shows_exactly_its_rows_a_page_at_a_time(
    web: FlaskClient, svc: Services
) -> None:
    emails = add_due_readers(svc.engine, 230, svc.clock())
    tagged = emails[::2]  # 115 of them
    with svc.sessions() as session:
        ids = {e: i for e, i in session.execute(select(Subscriber.email, Subscriber.id))}
        session.execute(
            insert(SubscriberTag),
            [
                {"subscriber_id": ids[e], "tag": "vip", "source": "t", "created_at": svc.clock()}
                for e in tagged
            ],
        )
        session.execute(  # ten of them paused: in the segment below, not in the paused one
            update(Enrollment)
            .where(Enrollment.subscriber_id.in_([ids[e] for e in tagged[:10]]))
            .values(status=EnrollmentStatus.PAUSED)
        )
        definition = {"sequences": ["tiny"], "tags": ["vip"], "status": ["active"]}
        segments.save(session, "vip-active", definition, svc.clock(), "t")
        session.commit()
    enroll(svc, tagged[20], "next-course")  # a second course of a reader: not the segment's

    seen, total = readers_shown(web, "/admin/readers?segment=vip-active")
    paused, paused_total = readers_shown(web, "/admin/readers?segment=vip-active&status=paused")

    assert total == "105" and len(seen) == 105 == len(set(seen))
    assert set(seen) == set(tagged[10:])
    assert paused == [] and paused_total == ""  # the segment AND the list's status filter
    with svc.sessions() as session:  # the query pages by id from either end, with the total
        filters = segments.narrowed(session, Filters(segment="vip-active"), svc.clock())
        first = queries.readers_page(session, Cursor(), filters, size=40)
        last = queries.readers_page(session, Cursor(last=True), filters, size=40)
        second = queries.readers_page(session, Cursor(after=first.older), filters, size=40)
    assert first.total == last.total == 105
    assert [r[1].email for r in first.rows] == sorted(tagged[10:], reverse=True)[:40]
    assert [r[1].email for r in second.rows] == sorted(tagged[10:], reverse=True)[40:80]
    assert [r[1].email for r in last.rows] == sorted(tagged[10:], reverse=True)[-40:]
    missing = web.get("/admin/readers?segment=nope&status=active", follow_redirects=True)
    assert "no segment named 'nope' (known: vip-active)" in html.unescape(missing.text)


def test_a_bulk_pause_and_the_export_on_a_segment_take_exactly_its_rows(
    web: FlaskClient, svc: Services
) -> None:
    four_readers(svc)
    with svc.sessions() as session:
        segments.save(
            session, "tiny-vips", {"sequences": ["tiny"], "tags": ["vip"]}, svc.clock(), "t"
        )
        session.commit()

    number, text = preview(web, action="pause", segment="tiny-vips")
    message = confirm(web, number, action="pause", segment="tiny-vips")
    exported = web.get("/admin/readers/export.csv?segment=tiny-vips")

    assert number == 2
    assert "This will pause 2 enrollments in the segment tiny-vips." in text
    assert message == "Paused 2 enrollments in the segment tiny-vips."
    assert statuses(svc) == {
        "ada@example.org": "paused",
        "bo@example.org": "paused",
        "cy@example.org": "active",
    }
    # bo's other course and dee (a vip of next-course only) are not the segment's rows
    assert statuses(svc, "next-course") == {"bo@example.org": "active", "dee@example.org": "active"}
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert sorted((r["email"], r["sequence"], r["status"]) for r in rows) == [
        ("ada@example.org", "tiny", "paused"),
        ("bo@example.org", "tiny", "paused"),
    ]


def test_saving_the_readers_filter_as_a_segment_selects_the_same_rows(
    web: FlaskClient, svc: Services
) -> None:
    four_readers(svc)
    enroll(svc, "eve@example.org")
    tag(svc, "eve@example.org", "vip")
    with svc.sessions() as session:
        session.execute(
            update(Enrollment)
            .where(
                Enrollment.subscriber_id.in_(
                    select(Subscriber.id).where(Subscriber.email == "eve@example.org")
                )
            )
            .values(status=EnrollmentStatus.PAUSED)
        )
        session.commit()
    filtered = "/admin/readers?sequence=tiny&status=active&tag=vip"
    listed = web.get(filtered).text
    assert 'id="save-as-segment"' in listed

    saved = web.post(
        "/admin/segments/from-filter",
        data={
            "csrf_token": csrf_token(listed),
            "name": "vip-active",
            "sequence": "tiny",
            "status": "active",
            "tag": "vip",
        },
    )

    assert saved.status_code == 302
    assert saved.headers["Location"] == "/admin/readers?segment=vip-active"
    with svc.sessions() as session:
        assert segments.named(session, "vip-active").definition == {
            "sequences": ["tiny"],
            "status": ["active"],
            "tags": ["vip"],
        }
    by_filter, _ = readers_shown(web, filtered)
    by_segment, total = readers_shown(web, "/admin/readers?segment=vip-active")
    assert sorted(by_segment) == sorted(by_filter) == ["ada@example.org", "bo@example.org"]
    assert total == "2"
    again = web.post(
        "/admin/segments/from-filter",
        data={"csrf_token": csrf_token(listed), "name": "vip-active", "tag": "vip"},
        follow_redirects=True,
    )
    assert "Not saved: name: a segment named 'vip-active' exists" in html.unescape(again.text)


def test_editing_changes_the_definition_and_delete_asks_then_forgets_it(
    web: FlaskClient, svc: Services
) -> None:
    four_readers(svc)
    with svc.sessions() as session:
        segments.save(session, "vips", {"tags": ["vip"]}, svc.clock(), "cli")
        session.commit()
    form = web.get("/admin/segments/vips/edit").text
    assert "3 readers now" in form and 'value="vip"' in form

    changed = web.post(
        "/admin/segments/vips/edit",
        data={"csrf_token": csrf_token(form), "name": "other", "tags": "vip", "sequences": "tiny"},
    )
    listed = web.get("/admin/segments/").text

    assert changed.status_code == 302
    with svc.sessions() as session:
        assert segments.named(session, "vips").definition == {
            "sequences": ["tiny"],
            "tags": ["vip"],
        }
        assert count(svc, Segment) == 1  # the name stays (drafts refer to it)
    assert 'data-confirm="Delete the segment vips?' in listed
    deleted = web.post("/admin/segments/vips/delete", data={"csrf_token": csrf_token(listed)})
    assert deleted.status_code == 302 and count(svc, Segment) == 0
    assert web.get("/admin/segments/vips/edit").status_code == 404
    assert "No segments yet." in web.get("/admin/segments/").text


def test_a_viewer_sees_the_segments_without_buttons_and_is_refused_every_change(
    app: Flask, svc: Services
) -> None:
    four_readers(svc)
    with svc.sessions() as session:
        segments.save(session, "vips", {"tags": ["vip"]}, svc.clock(), "cli")
        create_operator(session, "viewer@example.org", PASSWORD, svc.clock(), Role.viewer)
        session.commit()
    viewer = app.test_client()
    assert log_in(viewer, email="viewer@example.org").status_code == 302

    def changes(page: str) -> int:
        return page.count('method="post"') - page.count('action="/admin/logout"')

    listed = viewer.get("/admin/segments/").text
    readers = viewer.get("/admin/readers?tag=vip").text
    csrf = csrf_token(listed)
    refused = [
        viewer.post(url, data={"csrf_token": csrf, "name": "x", "tags": "vip"}).status_code
        for url in (
            "/admin/segments/new",
            "/admin/segments/count",
            "/admin/segments/vips/edit",
            "/admin/segments/vips/delete",
            "/admin/segments/from-filter",
        )
    ]

    assert "vips" in listed and json_body(viewer.get("/admin/segments/vips/count.json")) == {
        "name": "vips",
        "count": 3,
    }
    assert changes(listed) == 0 and "New segment" not in listed
    assert changes(viewer.get("/admin/segments/vips/edit").text) == 0
    assert 'id="save-as-segment"' not in readers
    assert refused == [403] * 5
    with svc.sessions() as session:
        assert session.scalars(select(Segment.name)).all() == ["vips"]
        assert session.scalar(select(func.count()).select_from(Segment)) == 1
