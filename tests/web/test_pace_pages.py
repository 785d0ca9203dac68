"""The reader's pace over HTTP: a pace page's GET changes nothing, a forged or edited link is
refused, a bad date is answered in words; the preferences page links every choice; the
admin's reader page shows the pace and the dates that follow, the sequence page the counts."""
# ruff: noqa: F811  (fixtures imported from test_admin_access are parameters here)

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from drip.core.clock import FrozenClock
from drip.store.models import ConsentRecord, Enrollment, Event
from tests.web.test_admin_access import (  # noqa: F401  (fixtures)
    add_operator,
    admin,
    csrf_token,
    log_in,
    logged_in,
)
from tests.web.test_admin_pages import sign_up, subscriber_id, svc_of


def pace_link(app: Flask, enrollment_id: int, choice: str, via: str = "email") -> str:
    url = svc_of(app).links.pace_url(enrollment_id, choice, via)
    return url.removeprefix(svc_of(app).settings.base_url)


def counts(app: Flask) -> tuple[int, int]:
    with svc_of(app).sessions() as session:
        return (
            int(session.scalar(select(func.count()).select_from(Event)) or 0),
            int(session.scalar(select(func.count()).select_from(ConsentRecord)) or 0),
        )


def test_a_pace_page_get_changes_nothing_and_its_post_needs_the_button(
    client: FlaskClient, app: Flask
) -> None:
    enrollment = sign_up(svc_of(app))
    before = counts(app)
    for choice in ("pause", "slower", "now", "away"):
        page = client.get(pace_link(app, enrollment, choice))
        assert page.status_code == 200
        assert page.text.count('type="submit"') == 1  # one button, no undo yet
        assert page.headers["Cache-Control"] == "no-store"  # a token's page: no shared cache
    assert counts(app) == before
    url = pace_link(app, enrollment, "pause")
    answer = client.post(url, data={"csrf_token": csrf_token(client.get(url).text)})
    assert answer.status_code == 400
    assert "choose how long to pause" in answer.text
    assert counts(app) == before


def test_a_forged_or_edited_pace_link_is_refused(client: FlaskClient, app: Flask) -> None:
    enrollment = sign_up(svc_of(app))
    url = pace_link(app, enrollment, "pause")
    assert client.get(url[:-3] + "abc").status_code == 400
    assert client.get(url.replace("/pace/", "/pace/x")).status_code == 400


def test_an_away_date_in_the_past_is_answered_in_words(
    client: FlaskClient, app: Flask, clock: FrozenClock
) -> None:
    enrollment = sign_up(svc_of(app))
    url = pace_link(app, enrollment, "away")
    token = csrf_token(client.get(url).text)
    answer = client.post(url, data={"csrf_token": token, "until": "2026-02-01"})
    assert answer.status_code == 400
    assert "has passed" in answer.text
    answer = client.post(url, data={"csrf_token": token, "until": "next tuesday"})
    assert "choose the last day you are away" in answer.text


def test_the_preferences_page_links_each_pace_choice(client: FlaskClient, app: Flask) -> None:
    svc = svc_of(app)
    sign_up(svc)
    ada = subscriber_id(svc, "ada@example.org")
    page = client.get(svc.links.preferences_url(ada).removeprefix(svc.settings.base_url)).text
    links = re.findall(r'href="(http://[^"]+/pace/[^"]+)"', page)
    assert len(links) == 4
    before = counts(app)
    url = links[0].removeprefix(svc.settings.base_url)
    token = csrf_token(client.get(url).text)
    client.post(url, data={"csrf_token": token, "length": "1w"})
    assert counts(app) == (before[0] + 1, before[1] + 1)
    with svc.sessions() as session:
        consent = session.scalars(select(ConsentRecord).order_by(ConsentRecord.id.desc())).first()
    assert consent is not None and consent.source == "preferences page"
    assert consent.consent_text.startswith("Paused for a week; next lesson ")


def test_the_admin_shows_the_reader_pace_the_dates_and_the_course_counts(
    logged_in: FlaskClient, client: FlaskClient, app: Flask
) -> None:
    svc = svc_of(app)
    enrollment = sign_up(svc)
    svc.dispatcher().run_pass(svc.clock())  # the welcome
    url = pace_link(app, enrollment, "slower")
    client.post(url, data={"csrf_token": csrf_token(client.get(url).text)})
    page = logged_in.get(f"/admin/readers/{subscriber_id(svc, 'ada@example.org')}").text
    assert "<strong>Pace:</strong> slower (each delay counted twice)" in page
    assert "2. Lesson two: Fri 2026-03-06 09:00 EST" in page
    assert "3. Lesson three: Thu 2026-03-12 09:00 EDT" in page
    assert "Slower, chosen by the reader" in page  # on the timeline, with how
    assert "(from the lesson email)" in page
    sequence = logged_in.get("/admin/sequences/tiny").text
    assert "Readers' own pace: 0 paused · 0 away · 1 slower" in sequence
    with svc.sessions() as session:
        assert session.scalars(select(Enrollment.slower)).one() is True
