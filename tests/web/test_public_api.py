"""`POST /api/subscriptions` with its CORS rules, the embeddable form and `drip embed`."""
# ruff: noqa: F811  (the fixtures imported from test_public_signup are parameters here)

from __future__ import annotations

import re
from html.parser import HTMLParser

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from drip.cli import cli
from drip.cli.common import Runtime
from drip.content.embed import embed_token, snippet
from drip.services import Services
from drip.store.models import ConsentRecord, Enrollment, Subscriber
from tests.conftest import take_in
from tests.web.test_public_signup import (  # noqa: F401  (fixtures)
    BLOG,
    public_app,
    public_settings,
    snapshot,
    svc,
    web,
)

GOOD = {
    "email": "ada@example.org",
    "first_name": "Ada",
    "sequence": "tiny",
    "timezone": "Asia/Kolkata",
    "consent": True,
}


def test_a_valid_json_sign_up_is_accepted_with_202(web: FlaskClient, svc: Services) -> None:
    answer = web.post("/api/subscriptions", json=GOOD, headers={"Origin": BLOG})

    assert answer.status_code == 202
    assert answer.json == {"status": "accepted"}
    assert answer.headers["Access-Control-Allow-Origin"] == BLOG
    take_in(svc)
    with svc.sessions() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert (subscriber.email, subscriber.timezone) == ("ada@example.org", "Asia/Kolkata")
        assert session.scalars(select(Enrollment.status)).one() == "pending"
        consent = session.scalars(select(ConsentRecord)).one()
        assert consent.source == f"api ({BLOG})"


def test_a_known_address_gets_the_same_json_answer(web: FlaskClient) -> None:
    first = web.post("/api/subscriptions", json=GOOD)
    again = web.post("/api/subscriptions", json=GOOD)

    assert (first.status_code, first.data) == (again.status_code, again.data)


def test_bad_json_sign_ups_get_a_clear_4xx_and_store_nothing(
    web: FlaskClient, svc: Services
) -> None:
    before = snapshot(svc.engine)
    cases = [
        ({**GOOD, "consent": False}, 400, "consent_required", "consent", "consent must be true"),
        ({**GOOD, "consent": "yes"}, 400, "consent_required", "consent", "consent must be true"),
        ({**GOOD, "email": "nope"}, 400, "invalid_email", "email", "doesn't look like an email"),
        ({**GOOD, "email": 42}, 400, "invalid_field", "email", "strings"),
        ({**GOOD, "tags": "a"}, 400, "invalid_field", "tags", "list of strings"),
        ({**GOOD, "sequence": "nope"}, 404, "unknown_sequence", "sequence", "unknown sequence"),
        (["not", "an", "object"], 400, "invalid_body", None, "JSON object"),
    ]
    for body, status, code, field, message in cases:
        answer = web.post("/api/subscriptions", json=body)
        assert answer.status_code == status, body
        error = answer.json["error"]  # type: ignore[index]
        assert (error["code"], error.get("field")) == (code, field), answer.json
        assert message in error["message"], answer.json
        assert set(answer.json) == {"error"}  # type: ignore[arg-type]
    plain = web.post("/api/subscriptions", data="email=ada@example.org")
    assert plain.status_code == 415
    assert plain.json["error"]["code"] == "unsupported_media_type"  # type: ignore[index]
    assert "application/json" in plain.json["error"]["message"]  # type: ignore[index]
    assert snapshot(svc.engine) == before


def test_preflight_is_allowed_only_for_configured_origins(web: FlaskClient) -> None:
    allowed = web.options(
        "/api/subscriptions",
        headers={
            "Origin": BLOG,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    other = web.options(
        "/api/subscriptions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == BLOG
    assert allowed.headers["Access-Control-Allow-Methods"] == "POST"
    assert "content-type" in allowed.headers["Access-Control-Allow-Headers"].lower()
    assert other.status_code == 403
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_post_from_an_origin_not_allowed_is_refused_and_stores_nothing(
    web: FlaskClient, svc: Services
) -> None:
    before = snapshot(svc.engine)

    answer = web.post("/api/subscriptions", json=GOOD, headers={"Origin": "https://evil.example"})

    assert answer.status_code == 403
    assert answer.json["error"]["code"] == "forbidden_origin"  # type: ignore[index]
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert snapshot(svc.engine) == before


class _Form(HTMLParser):
    """The action and every named input of the first form in a piece of HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and not self.action:
            self.action = attributes.get("action") or ""
        if tag == "input" and attributes.get("name"):
            self.fields[str(attributes["name"])] = attributes.get("value") or ""


def parse_form(html: str) -> _Form:
    form = _Form()
    form.feed(html)
    return form


def test_drip_embed_prints_a_plain_form_posting_to_the_sequence(public_app: Flask) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["embed", "tiny"], obj=Runtime(public_app.extensions["drip"]))

    assert result.exit_code == 0, result.output
    form = parse_form(result.output)
    assert form.action == "http://drip.test/subscribe/tiny"
    assert set(form.fields) >= {
        "embed_token",
        "email",
        "first_name",
        "consent",
        "timezone",
        "website",
    }
    assert "Yes, send me this email course." in result.output
    missing = runner.invoke(cli, ["embed", "nope"], obj=Runtime(public_app.extensions["drip"]))
    assert missing.exit_code == 1 and "unknown sequence 'nope'" in missing.output


def test_the_embedded_form_signs_up_without_a_session(public_app: Flask, svc: Services) -> None:
    with public_app.app_context():
        sequence = svc.content.library().get("tiny")
        assert sequence is not None
        form = parse_form(snippet(sequence, "http://drip.test", svc.settings.secret_key))
    fresh = public_app.test_client()  # a visitor of the blog: no drip cookie, no CSRF token
    data = {**form.fields, "email": "ada@example.org", "consent": "yes"}

    answer = fresh.post(
        form.action.removeprefix("http://drip.test"), data=data, headers={"Origin": BLOG}
    )

    assert answer.status_code == 303 and answer.headers["Location"] == "/subscribe/tiny/thanks"
    take_in(svc)
    with svc.sessions() as session:
        assert session.scalars(select(ConsentRecord.source)).one() == f"embedded form ({BLOG})"


def test_an_embed_token_for_another_sequence_or_a_forged_one_is_refused(
    public_app: Flask, svc: Services
) -> None:
    fresh = public_app.test_client()
    before = snapshot(svc.engine)
    base = {"email": "ada@example.org", "consent": "yes"}

    other = fresh.post(
        "/subscribe/tiny",
        data={**base, "embed_token": embed_token(svc.settings.secret_key, "usmle-insider-kit")},
    )
    forged = fresh.post("/subscribe/tiny", data={**base, "embed_token": "dGlueQ.forged"})
    neither = fresh.post("/subscribe/tiny", data=base)

    assert (other.status_code, forged.status_code, neither.status_code) == (400, 400, 400)
    assert re.search("out of date", other.text)
    assert snapshot(svc.engine) == before
