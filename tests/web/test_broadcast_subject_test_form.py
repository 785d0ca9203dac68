"""The admin's broadcast form carries a test of a second subject, so a draft written or
uploaded with one keeps it through every edit, and an operator can add or drop it there."""

from __future__ import annotations

import html
import io

from flask import Flask
from sqlalchemy import select

from drip.store.models import Broadcast
from tests.web.test_admin_access import csrf_token, logged_in_client

BODY = "Hi {{ first_name }},\n\nA new post is up. [Leave]({{ unsubscribe_url }})\n"
FILE = (
    '---\nsubject: "The interview day"\nto: [tiny]\nvariants:\n  b:\n'
    '    subject: "The interview day, hour by hour"\ntest_share: 30%\ndecide_after: 2h\n---\n'
    + BODY
)


def audience(app: Flask) -> dict[str, object]:
    with app.extensions["drip"].sessions() as session:
        return dict(session.scalars(select(Broadcast.audience)).one())


def test_an_uploaded_subject_test_is_shown_in_the_edit_form_and_kept_by_an_edit(
    app: Flask,
) -> None:
    web = logged_in_client(app)
    token = csrf_token(web.get("/admin/broadcasts/").text)
    written = web.post(
        "/admin/broadcasts/",
        data={"csrf_token": token, "file": (io.BytesIO(FILE.encode()), "day.md")},
        content_type="multipart/form-data",
    )
    page = html.unescape(web.get(written.location).text)
    assert 'value="The interview day, hour by hour"' in page
    assert 'value="30%"' in page and 'value="2h"' in page

    edited = web.post(  # the form as the page shows it, one typo mended in the body
        f"{written.location}/edit",
        data={
            "csrf_token": token,
            "subject": "The interview day",
            "body": BODY.replace("new post", "fresh post"),
            "to": ["tiny"],
            "subject_b": "The interview day, hour by hour",
            "preheader_b": "",
            "test_share": "30%",
            "decide_after": "2h",
        },
    )
    assert edited.status_code == 302
    kept = audience(app)
    assert kept["variants"] == {"b": {"subject": "The interview day, hour by hour"}}
    assert (kept["test_share"], kept["decide_after"]) == ("30%", "2h")


def test_a_subject_test_is_added_in_the_form_checked_and_dropped_by_emptying_subject_b(
    app: Flask,
) -> None:
    web = logged_in_client(app)
    token = csrf_token(web.get("/admin/broadcasts/").text)
    fields = {"csrf_token": token, "subject": "News", "body": BODY, "to": ["tiny"]}
    refused = web.post(
        "/admin/broadcasts/", data={**fields, "subject_b": "Big news", "test_share": "900%"}
    )
    assert refused.status_code == 400
    assert "test_share: &#39;900%&#39; is not a share such as 20%" in refused.text
    assert 'value="Big news"' in refused.text  # what was typed comes back

    written = web.post("/admin/broadcasts/", data={**fields, "subject_b": "Big news"})
    assert written.status_code == 302
    added = audience(app)
    assert added["variants"] == {"b": {"subject": "Big news"}}
    assert (added["test_share"], added["decide_after"]) == ("20%", "4h")  # the defaults

    dropped = web.post(f"{written.location}/edit", data={**fields, "subject_b": " "})
    assert dropped.status_code == 302
    assert "variants" not in audience(app) and "test_share" not in audience(app)
