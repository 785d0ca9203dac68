"""The REST API: an integration creates a reader, starts a course, tags them and reads the
timeline with a write key; a read key cannot write; a revoked key gets 401; the OpenAPI
document lists exactly the routes there are."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.app import create_app
from drip.audience.pace import pause
from drip.audience.segments import save
from drip.audience.subscriptions import Consent
from drip.audience.tags import add_tags
from drip.cli import cli
from drip.core.clock import FrozenClock
from drip.integrations.api_keys import create_key
from drip.services import Services
from drip.store.models import ApiKey, Broadcast, ConsentRecord, Enrollment, Subscriber
from tests.conftest import add_replies, enroll, json_body, make_settings
from tests.smtp import SmtpServer


@pytest.fixture
def api_app(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Flask]:
    app = create_app(make_settings(tmp_path, backend_url, smtp_url=smtp_server.url), clock=clock)
    app.config["TESTING"] = True
    yield app
    app.extensions["drip"].engine.dispose()


def key(app: Flask, scope: str, name: str | None = None) -> str:
    svc: Services = app.extensions["drip"]
    with svc.sessions() as session:
        made = create_key(session, name or scope, scope, svc.clock())
        session.commit()
    return made


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(api_app: Flask) -> FlaskClient:
    return api_app.test_client()


def test_an_integration_creates_enrolls_tags_and_reads_the_timeline_of_a_reader(
    api_app: Flask, client: FlaskClient, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    write = auth(key(api_app, "write", "zapier"))

    made = client.post(
        "/api/v1/readers",
        headers=write,
        json={
            "email": "Ada@Example.org",
            "first_name": "Ada",
            "timezone": "Asia/Kolkata",
            "consent_source": "webinar sign-up sheet",
        },
    )
    assert made.status_code == 201
    reader = made.get_json()
    assert reader["email"] == "ada@example.org" and reader["enrollments"] == []
    rid = reader["id"]

    started = client.post(
        f"/api/v1/readers/{rid}/enrollments",
        headers=write,
        json={"sequence": "tiny", "confirmed": True},
    )
    tagged = client.post(
        f"/api/v1/readers/{rid}/tags", headers=write, json={"tags": ["has-dates", "IMG"]}
    )
    svc: Services = api_app.extensions["drip"]
    svc.dispatcher().run_pass(clock())
    timeline = client.get(f"/api/v1/readers/{rid}/events", headers=write).get_json()

    assert started.status_code == 201 and started.get_json()["status"] == "active"
    assert tagged.get_json() == {"tags": ["has-dates", "img"]}
    assert [m.subject for m in smtp_server.to("ada@example.org")] == ["Welcome, Ada"]
    kinds = [event["kind"] for event in timeline["data"]]
    assert kinds[0] == "created" and "confirmed" in kinds and kinds.count("tagged") == 2
    assert client.get(f"/api/v1/readers/{rid}", headers=write).get_json()["tags"] == [
        "has-dates",
        "img",
    ]
    with svc.sessions() as session:
        consent = session.scalars(select(ConsentRecord.source)).all()
        assert consent[0] == "api (zapier): webinar sign-up sheet"


def test_a_read_key_reads_but_cannot_write(api_app: Flask, client: FlaskClient) -> None:
    read = auth(key(api_app, "read"))
    assert client.get("/api/v1/readers", headers=read).status_code == 200
    refused = client.post(
        "/api/v1/readers", headers=read, json={"email": "a@example.org", "consent_source": "x"}
    )
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"


def test_a_revoked_or_unknown_key_gets_401(
    api_app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    token = key(api_app, "write", "old")
    svc: Services = api_app.extensions["drip"]
    env = {
        "DRIP_DATABASE_URL": svc.settings.resolved_database_url,
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_SECRET_KEY": "k",
        "DRIP_SEQUENCES_DIR": str(svc.settings.sequences_dir),
    }
    revoked = CliRunner().invoke(cli, ["api-key", "revoke", "old"], env=env)

    assert revoked.exit_code == 0, revoked.output
    for headers in (auth(token), auth("drip_not-a-key"), {}):
        answer = client.get("/api/v1/readers", headers=headers)
        assert answer.status_code == 401
        assert answer.get_json()["error"]["code"] == "unauthorized"


def test_drip_api_key_create_prints_a_key_once_and_keeps_only_its_hash(
    api_app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    svc: Services = api_app.extensions["drip"]
    env = {
        "DRIP_DATABASE_URL": svc.settings.resolved_database_url,
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_SECRET_KEY": "k",
        "DRIP_SEQUENCES_DIR": str(svc.settings.sequences_dir),
    }
    made = CliRunner().invoke(cli, ["api-key", "create", "wordpress", "--scope", "write"], env=env)

    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[0]
    assert token.startswith("drip_")
    with svc.sessions() as session:
        stored = session.scalars(select(ApiKey)).one()
        assert stored.scope == "write" and token not in stored.key_hash
    assert client.get("/api/v1/readers", headers=auth(token)).status_code == 200


def test_errors_have_one_shape_and_lists_page_by_cursor(
    api_app: Flask, client: FlaskClient
) -> None:
    write = auth(key(api_app, "write"))
    for number in range(5):
        client.post(
            "/api/v1/readers",
            headers=write,
            json={"email": f"r{number}@example.org", "consent_source": "import"},
        )
    first = client.get("/api/v1/readers?limit=2", headers=write).get_json()
    second = client.get(
        f"/api/v1/readers?limit=2&cursor={first['next_cursor']}", headers=write
    ).get_json()
    third = client.get(
        f"/api/v1/readers?limit=2&cursor={second['next_cursor']}", headers=write
    ).get_json()
    emails = [r["email"] for page in (first, second, third) for r in page["data"]]
    assert emails == [f"r{n}@example.org" for n in range(5)] and third["next_cursor"] is None

    for answer, status, code in (
        (client.get("/api/v1/readers/999", headers=write), 404, "not_found"),
        (
            client.post(
                "/api/v1/readers", headers=write, data="[" * 50_000, content_type="application/json"
            ),
            400,
            "invalid",
        ),
        (
            client.post(
                "/api/v1/readers",
                headers=write,
                json={"email": "r0@example.org", "consent_source": "x"},
            ),
            409,
            "exists",
        ),
        (
            client.post("/api/v1/readers", headers=write, json={"email": "x@example.org"}),
            400,
            "invalid_consent_source",
        ),
        (
            client.post("/api/v1/readers/1/enrollments", headers=write, json={"sequence": "nope"}),
            404,
            "unknown_sequence",
        ),
        (
            client.post("/api/v1/readers/1/tags", headers=write, json={"tags": ["no way"]}),
            400,
            "invalid_tag",
        ),
    ):
        assert answer.status_code == status, answer.get_data(as_text=True)
        assert set(answer.get_json()) == {"error"}
        assert answer.get_json()["error"]["code"] == code


def test_a_reader_can_be_changed_paused_and_erased(api_app: Flask, client: FlaskClient) -> None:
    write = auth(key(api_app, "write"))
    rid = client.post(
        "/api/v1/readers",
        headers=write,
        json={"email": "ada@example.org", "consent_source": "form"},
    ).get_json()["id"]
    client.post(
        f"/api/v1/readers/{rid}/enrollments",
        headers=write,
        json={"sequence": "tiny", "confirmed": True},
    )

    changed = client.patch(
        f"/api/v1/readers/{rid}",
        headers=write,
        json={"first_name": "Ada", "timezone": "Europe/Paris"},
    )
    paused = client.post(f"/api/v1/readers/{rid}/enrollments/tiny/pause", headers=write)
    bad_zone = client.patch(f"/api/v1/readers/{rid}", headers=write, json={"timezone": "Mars"})
    erased = client.delete(f"/api/v1/readers/{rid}", headers=write)

    assert changed.get_json()["timezone"] == "Europe/Paris"
    assert paused.get_json()["status"] == "paused"
    assert bad_zone.status_code == 400
    assert erased.status_code == 204
    svc: Services = api_app.extensions["drip"]
    with svc.sessions() as session:
        assert session.scalars(select(Subscriber)).all() == []


def test_the_openapi_document_lists_exactly_the_routes_of_the_api(
    api_app: Flask, client: FlaskClient
) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    documented = {
        (path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }
    routes = set()
    for rule in api_app.url_map.iter_rules():
        if rule.endpoint.startswith("api_v1."):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            path = re.sub(r"\{any\([^)]*\):(\w+)\}", r"{\1}", path)
            routes |= {
                (path, method) for method in rule.methods or () if method not in ("HEAD", "OPTIONS")
            }
    assert documented == routes


def test_an_integration_writes_schedules_and_follows_a_broadcast_to_a_segment(
    api_app: Flask, client: FlaskClient, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    svc: Services = api_app.extensions["drip"]
    write, read = auth(key(api_app, "write", "wordpress")), auth(key(api_app, "read"))
    enroll(svc, "ada@example.org")
    enroll(svc, "bo@example.org")
    with svc.sessions() as session:
        ada = session.scalars(select(Subscriber).where(Subscriber.email == "ada@example.org")).one()
        add_tags(session, ada, ["has-dates"], clock(), "test")
        save(session, "dated", {"tags": ["has-dates"]}, clock(), "test")
        session.commit()
    draft = {
        "subject": "A new post",
        "body": 'Hi {{ first_name|default("there") }}, [leave]({{ unsubscribe_url }})',
        "audience": {"to": ["tiny"], "segment": "dated"},
    }

    refused = client.post("/api/v1/broadcasts", headers=read, json=draft)
    made = client.post("/api/v1/broadcasts", headers=write, json=draft)
    bid = json_body(made)["id"]
    listed = client.get("/api/v1/broadcasts", headers=read)
    scheduled = client.post(
        f"/api/v1/broadcasts/{bid}/schedule", headers=write, json={"at": clock().isoformat()}
    )
    again = client.post(f"/api/v1/broadcasts/{bid}/schedule", headers=write, json={})
    for _ in range(6):
        svc.dispatcher().run_pass(clock())
        clock.advance(hours=1)
    status = json_body(client.get(f"/api/v1/broadcasts/{bid}", headers=read))

    assert refused.status_code == 403 and json_body(refused)["error"]["code"] == "forbidden"
    assert made.status_code == 201
    assert json_body(made)["status"] == "draft" and json_body(made)["audience_now"] == 1
    assert [b["id"] for b in json_body(listed)["data"]] == [bid]
    assert json_body(scheduled)["status"] == "scheduled" and json_body(scheduled)["queued"] == 1
    assert again.status_code == 409 and json_body(again)["error"]["code"] == "conflict"
    assert [r for m in smtp_server.messages if m.subject == "A new post" for r in m.recipients] == [
        "ada@example.org"
    ]
    assert (status["status"], status["total"], status["sent"], status["queued"]) == (
        "done",
        1,
        1,
        0,
    )
    with svc.sessions() as session:
        assert session.get(Broadcast, bid).created_by == "api (wordpress)"  # type: ignore[union-attr]


def test_broadcast_mistakes_get_the_stable_error_shape_and_lists_page_by_cursor(
    api_app: Flask, client: FlaskClient
) -> None:
    write = auth(key(api_app, "write"))
    good = {"subject": "Hi", "body": "Hello.", "audience": {"to": "tiny"}}
    ids = [
        json_body(client.post("/api/v1/broadcasts", headers=write, json=good))["id"] for _ in "abc"
    ]

    first = json_body(client.get("/api/v1/broadcasts?limit=2", headers=write))
    second = json_body(
        client.get(f"/api/v1/broadcasts?limit=2&cursor={first['next_cursor']}", headers=write)
    )
    assert [b["id"] for b in first["data"] + second["data"]] == ids
    assert second["next_cursor"] is None
    for answer, status, code, words in (
        (
            client.post("/api/v1/broadcasts", headers=write, json={**good, "subject": ""}),
            400,
            "invalid_broadcast",
            "missing subject",
        ),
        (
            client.post(
                "/api/v1/broadcasts", headers=write, json={**good, "audience": {"segment": "x"}}
            ),
            400,
            "invalid_broadcast",
            "no segment named 'x'",
        ),
        (
            client.post("/api/v1/broadcasts", headers=write, json={**good, "audience": ["tiny"]}),
            400,
            "invalid_audience",
            "audience is an object",
        ),
        (
            client.post(
                f"/api/v1/broadcasts/{ids[0]}/schedule", headers=write, json={"at": "2020-01-01"}
            ),
            400,
            "invalid_broadcast",
            "is in the past",
        ),
        (client.get("/api/v1/broadcasts/999", headers=write), 404, "not_found", "no broadcast"),
    ):
        assert answer.status_code == status, answer.get_data(as_text=True)
        assert set(json_body(answer)) == {"error"}
        assert json_body(answer)["error"]["code"] == code
        assert words in json_body(answer)["error"]["message"]


def test_a_draft_is_edited_by_patch_checked_as_a_new_one_and_only_while_a_draft(
    api_app: Flask, client: FlaskClient, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    svc: Services = api_app.extensions["drip"]
    write, read = auth(key(api_app, "write")), auth(key(api_app, "read"))
    enroll(svc, "ada@example.org")
    enroll(svc, "bo@example.org")
    with svc.sessions() as session:
        ada = session.scalars(select(Subscriber).where(Subscriber.email == "ada@example.org")).one()
        add_tags(session, ada, ["has-dates"], clock(), "test")
        session.commit()
    body = "Hi {{ first_name }}, [leave]({{ unsubscribe_url }})"
    made = client.post(
        "/api/v1/broadcasts",
        headers=write,
        json={"subject": "Old", "body": body, "audience": {"to": ["tiny"]}},
    )
    url = f"/api/v1/broadcasts/{json_body(made)['id']}"
    assert json_body(made)["audience_now"] == 2

    refused = client.patch(url, headers=read, json={"subject": "Nope"})
    bad = client.patch(url, headers=write, json={"subject": "New", "body": "Hi {{ frist_name }}"})
    assert refused.status_code == 403 and json_body(refused)["error"]["code"] == "forbidden"
    assert bad.status_code == 400 and json_body(bad)["error"]["code"] == "invalid_broadcast"
    assert "unknown variable 'frist_name'" in json_body(bad)["error"]["message"]
    assert json_body(client.get(url, headers=read))["subject"] == "Old"

    edited = client.patch(
        url,
        headers=write,
        json={"subject": "New", "audience": {"to": ["tiny"], "tags": ["has-dates"]}},
    )
    assert edited.status_code == 200, edited.get_data(as_text=True)
    assert (json_body(edited)["subject"], json_body(edited)["audience_now"]) == ("New", 1)
    assert json_body(edited)["audience"]["tags"] == ["has-dates"]
    with svc.sessions() as session:
        kept = session.scalars(select(Broadcast)).one()
        assert (kept.body, kept.name) == (body, "old")  # what the PATCH left out is kept

    client.post(f"{url}/schedule", headers=write, json={})
    late = client.patch(url, headers=write, json={"subject": "Too late"})
    assert late.status_code == 409 and json_body(late)["error"]["code"] == "conflict"
    for _ in range(6):
        svc.dispatcher().run_pass(clock())
        clock.advance(hours=1)
    sent = [
        (m.subject, r)
        for m in smtp_server.messages
        if m.subject in ("Old", "New", "Too late")
        for r in m.recipients
    ]
    assert sent == [("New", "ada@example.org")]


def test_a_read_key_sees_a_readers_pace_and_their_replies_newest_first(
    api_app: Flask, client: FlaskClient, clock: FrozenClock
) -> None:
    svc: Services = api_app.extensions["drip"]
    read = auth(key(api_app, "read"))
    enrollment_id = enroll(svc, "ada@example.org")
    with svc.sessions() as session:
        enrollment = session.get_one(Enrollment, enrollment_id)
        pause(
            session,
            svc.content.library().sequences["tiny"],
            enrollment,
            clock(),
            "back",
            Consent(source="test", text="x"),
        )
        add_replies(session, enrollment, clock())
        session.commit()
        rid = enrollment.subscriber_id

    reader = client.get(f"/api/v1/readers/{rid}", headers=read).get_json()
    replies = client.get(f"/api/v1/readers/{rid}/replies", headers=read)
    nobody = client.get("/api/v1/readers/999999/replies", headers=read)

    assert reader["enrollments"][0]["pace"] == {
        "slower": False,
        "pause": {"kind": "pause", "since": clock().isoformat(), "until": None},
    }
    assert replies.status_code == 200
    assert [(r["sequence"], r["lesson"], r["body"]) for r in replies.get_json()["data"]] == [
        ("tiny", "two", "About two."),
        ("tiny", "welcome", "About welcome."),
    ]
    assert nobody.status_code == 404 and nobody.get_json()["error"]["code"] == "not_found"
