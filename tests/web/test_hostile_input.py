"""Whatever a client sends, drip answers with a refusal, never a 500: NUL bytes, huge
integers, deeply nested JSON, RFC 2047 encoded words and over-long fields, thrown by
Hypothesis at every route of `app.url_map` (so a new route is covered the day it lands),
as query strings, form fields and JSON bodies, logged in as an owner and with a write key.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule

from drip.app import create_app
from drip.core.clock import FrozenClock
from drip.core.config import PROJECT_ROOT
from drip.integrations.api_keys import create_key
from tests.conftest import CHEAP_HASHER, courses_beside_tiny, enroll, make_settings
from tests.web.test_admin_access import add_operator, log_in

# Every form field name drip's templates use, plus the API's and the providers' keys.
FIELDS = sorted(
    set(
        re.findall(
            r'name="([a-z_]+)"',
            "".join(p.read_text() for p in (PROJECT_ROOT / "templates").rglob("*.html")),
        )
    )
    | {"email", "first_name", "timezone", "sequence", "tags", "at", "zone", "subject", "body"}
    - {"csrf_token"}
)
# What a path's variables become: a reader, a broadcast, a course and a lesson that exist.
PATH_VALUES = {"integer": "1", "path": "drip.js"}  # any other: the course's slug
LESSON = "welcome"
SKIP = {
    "admin.auth.logout": "ends the session the other requests ride on",
    "static": "files, not a form",
}
# The hostile values: each a family Hypothesis draws from.
NUL = st.text(max_size=20).map(lambda s: f"{s}\x00{s}")
HUGE = st.integers(min_value=2**31 - 1, max_value=2**200).map(str) | st.just(str(2**63))
ENCODED = st.sampled_from(
    ["=?utf-8?q?Eve_=0D=0AX-Inj=3A_1?=", "=?utf-8?b?DQpCY2M6IGFAZXhhbXBsZS5vcmc=?=", "=?x?q?=00?="]
)
# Longer than any column (in every field at once: the CSV's 200 KB field has its own test).
LONG = st.integers(min_value=5_000, max_value=20_000).map(lambda n: "x" * n)
YEAR_9999 = st.sampled_from(["9999-12-31T23:59", "9999-12-31T23:59:59+14:00", "0001-01-01"])
SCALARS = NUL | HUGE | ENCODED | LONG | YEAR_9999


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


class Hostile:
    """The app on a migrated SQLite (or PostgreSQL) database with a reader, a draft
    broadcast, an owner logged in and a write key, and the routes to throw things at."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        svc = app.extensions["drip"]
        add_operator(svc)
        enroll(svc, confirmed=False)
        with svc.sessions() as session:
            self.key = create_key(session, "hostile", "write", svc.clock())
            session.commit()
        self.owner = app.test_client()
        assert log_in(self.owner).status_code == 302
        app.config["WTF_CSRF_ENABLED"] = False  # the payload reaches the view (CSRF: elsewhere)
        self.stranger = app.test_client()
        draft = self.owner.post(
            "/api/v1/broadcasts",
            json={"subject": "Hi", "body": "Hello", "audience": {"to": ["tiny"]}},
            headers=self.auth,
        )
        assert draft.status_code == 201, draft.text

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def routes(self) -> Iterator[tuple[str, str, str]]:
        """(endpoint, method, path) for every route, its variables filled."""
        for rule in self.app.url_map.iter_rules():
            if rule.endpoint in SKIP:
                continue
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                yield rule.endpoint, method, _path(rule)

    def client(self, path: str) -> FlaskClient:
        return self.owner if path.startswith("/admin") else self.stranger

    def send(self, method: str, path: str, value: str, *, as_json: Any = None) -> int:
        """One request with `value` in every field: the query for a GET, the form or
        (for the APIs and the webhooks) a JSON body otherwise."""
        headers = self.auth if path.startswith("/api/") else {}
        fields = dict.fromkeys(FIELDS, value)
        web = self.client(path)
        if method == "GET":
            answer = web.get(path, query_string=fields, headers=headers)
        elif as_json is not None or path.startswith(("/api/", "/webhooks/")):
            body = json.dumps(as_json if as_json is not None else fields)
            answer = web.open(
                path, method=method, data=body, content_type="application/json", headers=headers
            )
        else:
            answer = web.open(path, method=method, data=fields, headers=headers)
        return answer.status_code


def _path(rule: Rule) -> str:
    values: dict[str, str] = {}
    for name, converter in (rule._converters or {}).items():
        kind = type(converter).__name__.removesuffix("Converter").lower()
        if kind == "any":
            values[name] = sorted(converter.items)[0]  # type: ignore[attr-defined]
        elif name == "name":
            values[name] = LESSON
        else:
            values[name] = PATH_VALUES.get(kind, "tiny")
    return rule.build(values, append_unknown=False)[1]  # type: ignore[index]


SES_TOPIC = "arn:aws:sns:us-east-1:1:t"


def hostile_app(tmp_path: Path, database_url: str, clock: FrozenClock) -> Flask:
    return create_app(
        make_settings(
            tmp_path,
            database_url,
            sequences_dir=courses_beside_tiny(tmp_path, {}),  # the studio writes in a copy
            mailgun_signing_key="mailgun-key",
            webhook_token="bounce-token",
            sns_topic_arns=(SES_TOPIC,),  # so an SES post reaches the signature check
        ),
        clock=clock,
        password_hasher=CHEAP_HASHER,
    )


@pytest.fixture
def hostile(tmp_path: Path, sqlite_url: str, clock: FrozenClock) -> Iterator[Hostile]:
    app = hostile_app(tmp_path, sqlite_url, clock)
    yield Hostile(app)
    app.extensions["drip"].engine.dispose()


def every_route(hostile: Hostile, value: str) -> list[str]:
    """The routes that answered 500 to `value`."""
    return [
        f"{method} {path} ({endpoint})"
        for endpoint, method, path in hostile.routes()
        if hostile.send(method, path, value) >= 500
    ]


FAST = settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.slow
@FAST
@given(value=SCALARS)
def test_no_route_answers_500_to_hostile_fields(hostile: Hostile, value: str) -> None:
    assert every_route(hostile, value) == []


@FAST
@given(depth=st.integers(min_value=10_000, max_value=100_000))
def test_deeply_nested_json_is_refused_by_every_json_endpoint(hostile: Hostile, depth: int) -> None:
    bodies: Callable[[str], list[int]] = lambda path: [  # noqa: E731
        hostile.client(path)
        .post(path, data=nested(depth), content_type=kind, headers=hostile.auth)
        .status_code
        for kind in ("application/json", "text/plain")
    ]
    failing = {
        path: codes
        for _, method, path in hostile.routes()
        if method == "POST" and path.startswith(("/api/", "/webhooks/"))
        for codes in [bodies(path)]
        if max(codes) >= 500
    }
    assert failing == {}


def test_an_unsigned_ses_post_is_refused_not_a_500(hostile: Hostile) -> None:
    message = {
        "Type": "Notification",
        "MessageId": "m",
        "TopicArn": SES_TOPIC,
        "Message": "{}",
        "Timestamp": "2026-03-02T13:00:00Z",
        "SignatureVersion": "1",
        "Signature": "",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    }
    answer = hostile.stranger.post("/webhooks/ses", data=json.dumps(message))
    assert answer.status_code == 401 and "not signed" in answer.get_json()["error"]


def test_a_cursor_beyond_any_id_is_a_400_in_the_apis_error_shape(hostile: Hostile) -> None:
    for cursor in (str(2**31), str(2**63), str(2**64)):
        answer = hostile.stranger.get(f"/api/v1/readers?cursor={cursor}", headers=hostile.auth)
        assert answer.status_code == 400
        assert answer.get_json()["error"]["code"] == "invalid"


def test_a_broadcast_scheduled_for_year_9999_is_refused_with_the_reason(hostile: Hostile) -> None:
    answer = hostile.stranger.post(
        "/api/v1/broadcasts/1/schedule", json={"at": "9999-12-31T23:59"}, headers=hostile.auth
    )
    assert answer.status_code == 400
    assert "years ahead" in answer.get_json()["error"]["message"]


def test_a_csv_upload_with_a_200_kb_field_is_refused_with_the_line(hostile: Hostile) -> None:
    csv = f"email,first_name\nada@example.org,{'x' * 200_000}\n".encode()
    answer = hostile.owner.post(
        "/admin/import",
        data={"file": (io.BytesIO(csv), "readers.csv"), "sequence": "tiny", "source": "a fair"},
        follow_redirects=True,
    )
    assert answer.status_code < 500
    assert "line 2 of the CSV cannot be read" in answer.text


def test_a_lesson_that_breaks_the_mjml_layout_gets_a_preview_naming_the_problem(
    hostile: Hostile,
) -> None:
    answer = hostile.owner.post(
        f"/admin/sequences/tiny/lessons/{LESSON}/preview",
        data={"subject": "Hi", "delay": "0", "body": "Hello\n\n<mj-section>\n\nthere"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 200
    assert any("breaks the email layout" in p["message"] for p in answer.get_json()["problems"])


@pytest.mark.postgres
@pytest.mark.parametrize(
    "where", ["login form", "query", "json", "path"], ids=lambda where: where.replace(" ", "-")
)
def test_a_nul_byte_is_a_400_on_postgresql_even_at_the_login(
    tmp_path: Path, postgres_url: str, clock: FrozenClock, where: str
) -> None:
    app = hostile_app(tmp_path, postgres_url, clock)
    try:
        hostile = Hostile(app)
        web = hostile.stranger
        answer = {
            "login form": lambda: web.post(
                "/admin/login", data={"email": "a\x00@example.org", "password": "x"}
            ),
            "query": lambda: hostile.owner.get("/admin/readers?q=a%00b"),
            "json": lambda: web.post(
                "/api/v1/broadcasts",
                json={"subject": "Hi\x00", "body": "Hello", "audience": {"to": ["tiny"]}},
                headers=hostile.auth,
            ),
            "path": lambda: web.get("/subscribe/ti%00ny"),
        }[where]()
        assert answer.status_code == 400
    finally:
        app.extensions["drip"].engine.dispose()


@pytest.fixture
def hostile_postgres(tmp_path: Path, postgres_url: str, clock: FrozenClock) -> Iterator[Hostile]:
    app = hostile_app(tmp_path, postgres_url, clock)
    yield Hostile(app)
    app.extensions["drip"].engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
@settings(FAST, max_examples=2)
@given(value=NUL)
def test_no_route_answers_500_to_a_nul_byte_on_postgresql(
    hostile_postgres: Hostile, value: str
) -> None:
    assert every_route(hostile_postgres, value) == []
