"""Filtering readers by engagement: the admin's readers list, a segment's condition and
the REST API all select on the state kept on the reader."""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import select, update

from drip.audience import segments
from drip.audience.engagement import ENGAGING
from drip.services import Services
from drip.store.models import Broadcast, Engagement, EventKind, Subscriber
from tests.conftest import enroll, json_body
from tests.web.test_admin_access import csrf_token as csrf
from tests.web.test_admin_access import logged_in_client
from tests.web.test_api_v1 import auth, key

READERS = {
    "ada@example.org": Engagement.ENGAGED,
    "bo@example.org": Engagement.QUIET,
    "cy@example.org": Engagement.GONE,
}


def readers_in_states(app: Flask) -> Services:
    svc: Services = app.extensions["drip"]
    for email, state in READERS.items():
        enroll(svc, email)
        with svc.sessions() as session:
            session.execute(
                update(Subscriber).where(Subscriber.email == email).values(engagement=state)
            )
            session.commit()
    return svc


def test_the_readers_list_filters_by_engagement_and_shows_the_state(app: Flask) -> None:
    readers_in_states(app)
    client = logged_in_client(app)
    quiet = client.get("/admin/readers?engagement=quiet").text
    assert "bo@example.org" in quiet
    assert "ada@example.org" not in quiet and "cy@example.org" not in quiet
    assert 'class="badge quiet"' in quiet
    everyone = client.get("/admin/readers").text
    assert all(email in everyone for email in READERS)
    with app.extensions["drip"].sessions() as session:
        bo = session.scalar(select(Subscriber.id).where(Subscriber.email == "bo@example.org"))
    assert 'class="badge quiet">quiet</span>' in client.get(f"/admin/readers/{bo}").text
    nonsense = client.get("/admin/readers?engagement=asleep")
    assert nonsense.status_code == 200 and "No reader matches." in nonsense.text


def test_a_segment_selects_readers_by_engagement_and_refuses_an_unknown_state(
    app: Flask,
) -> None:
    svc = readers_in_states(app)
    definition = segments.parse({"engagement": ["quiet", "gone"]})
    with svc.sessions() as session:
        found = segments.members(session, definition, svc.clock())
    assert sorted(found.first) == ["bo@example.org", "cy@example.org"]
    assert segments.in_words(definition) == "readers of any course, quiet or gone"
    try:
        segments.parse({"engagement": ["asleep"]})
    except segments.SegmentError as error:
        assert "engagement: 'asleep' is not a state (engaged, quiet, gone)" in error.problems
    else:
        raise AssertionError("an unknown state was accepted")


def test_the_rest_api_lists_readers_in_one_state(app: Flask) -> None:
    readers_in_states(app)
    token = key(app, "read")
    client = app.test_client()
    body = json_body(client.get("/api/v1/readers?engagement=gone", headers=auth(token)))
    assert [r["email"] for r in body["data"]] == ["cy@example.org"]
    assert body["data"][0]["engagement"] == "gone"
    wrong = client.get("/api/v1/readers?engagement=asleep", headers=auth(token))
    assert wrong.status_code == 400
    assert json_body(wrong)["error"]["code"] == "invalid_engagement"
    listing = json_body(client.get("/api/v1/openapi.json"))["paths"]["/api/v1/readers"]["get"]
    assert {"name": "engagement", "in": "query"}.items() <= listing["parameters"][-1].items()


def test_engaging_kinds_are_a_persons_actions_never_a_download_a_scanner_can_make() -> None:
    assert {EventKind.CLICKED, EventKind.REPLIED, EventKind.KEPT, EventKind.EXITED} <= ENGAGING
    assert not {EventKind.DOWNLOAD, EventKind.NOT_SENT, EventKind.OFFERED} & ENGAGING


def test_the_dashboard_draws_each_courses_share_of_each_state_with_its_table(
    app: Flask,
) -> None:
    svc = readers_in_states(app)
    client = logged_in_client(app)
    assert "No day counted yet" in client.get("/admin/").text
    svc.dispatcher().run_pass(svc.clock())  # the day's first pass counts
    page = client.get("/admin/").text
    assert 'id="engagement-tiny"' in page
    chart = page[page.index('id="engagement-tiny"') :]
    assert "<svg" in chart and "<table>" in chart
    assert chart.count("33.33%") >= 3  # one reader in each state


def test_a_new_broadcast_in_the_admin_goes_to_engaged_readers_unless_unticked(
    app: Flask,
) -> None:
    svc = readers_in_states(app)
    client = logged_in_client(app)
    page = client.get("/admin/broadcasts/").text
    assert re.search(r'name="engagement" value="engaged"\s+checked', page)
    token = csrf(page)
    form = {"csrf_token": token, "subject": "News", "body": "Hi.", "to": ["tiny"]}
    ticked = client.post(
        "/admin/broadcasts/", data={**form, "engagement_shown": "1", "engagement": "engaged"}
    )
    unticked = client.post("/admin/broadcasts/", data={**form, "engagement_shown": "1"})
    with svc.sessions() as session:
        audiences = [b.audience for b in session.scalars(select(Broadcast).order_by(Broadcast.id))]
    assert [a["engagement"] for a in audiences] == ["engaged", "all"]
    assert ticked.status_code == unticked.status_code == 302
    edit_form = client.get(unticked.location).text
    assert not re.search(r'name="engagement" value="engaged"\s+checked', edit_form)
