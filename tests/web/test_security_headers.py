"""Every page, public and admin, carries a Content-Security-Policy that allows no inline
script and no framing, nosniff and no-referrer; the pages a token opens are never cached."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from drip.audience.subscriptions import Consent, subscribe
from drip.services import Services
from tests.conftest import TESTS

TEMPLATES = TESTS.parent / "templates"
# The embedded form is pasted into the author's blog and runs there, under the blog's
# policy, not ours: it keeps its one line of inline script.
PASTED_ELSEWHERE = {"public/embed.html", "public/_fields.html"}
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=", re.I)


def token_paths(services: Services) -> list[str]:
    with services.sessions() as session:
        enrollment = subscribe(
            session,
            services.content.library(),
            "tiny",
            "ada@example.org",
            services.clock(),
            consent=Consent(source="test", text="Yes"),
        )
        session.commit()
        ids = enrollment.id, enrollment.subscriber_id
    links = services.links
    urls = [
        links.confirm_url(ids[0]),
        links.unsubscribe_url(ids[0]),
        links.preferences_url(ids[1]),
        links.magnet_url(ids[0]),
    ]
    return [urlsplit(url).path for url in urls]


PAGES = [
    "/subscribe/tiny",
    "/admin/login",
    "/healthz",
    "/metrics",
    "/confirm/not-a-token",
    "/no-such-page",
    "/static/style.css",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_forbids_inline_script_framing_sniffing_and_referrers(
    client: FlaskClient, path: str
) -> None:
    headers = client.get(path).headers
    policy = {
        part.split()[0]: part.split()[1:] for part in headers["Content-Security-Policy"].split("; ")
    }
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["default-src"] == ["'self'"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_pages_a_token_opens_are_never_stored(client: FlaskClient, services: Services) -> None:
    paths = token_paths(services)
    for path in [*paths, "/unsubscribe/not-a-token", "/preferences/not-a-token"]:
        assert "no-store" in client.get(path).headers["Cache-Control"], path
    assert "no-store" not in client.get("/subscribe/tiny").headers.get("Cache-Control", "")


def test_no_template_of_our_own_pages_has_inline_script() -> None:
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        name = str(path.relative_to(TEMPLATES))
        if name in PASTED_ELSEWHERE:
            continue
        found += [f"{name}: {m[0]}" for m in INLINE_SCRIPT.finditer(path.read_text())]
    assert found == []


def test_the_static_scripts_are_served_from_our_origin(app: Flask, client: FlaskClient) -> None:
    page = client.get("/subscribe/tiny").text
    sources = re.findall(r'<script src="([^"]+)"', page)
    assert sources
    for source in sources:
        answer = client.get(source)
        assert answer.status_code == 200 and "javascript" in answer.content_type
