"""drip's session cookie (drip.web.sessions) is Flask's: each reads what the other writes,
under the current key or a fallback, and a tampered cookie opens an empty session."""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface, SessionInterface

from drip.web.sessions import CookieSessions

DATA: dict[str, object] = {
    "csrf_token": "a" * 40,
    "signed_up": {"slug": "tiny", "email": "ada@example.org"},
}
LONG: dict[str, object] = {
    "csrf_token": "a" * 40,
    "note": "x" * 500,
}  # compressible: Flask's cookie is zlib'd


def app(key: str = "new-key", fallbacks: tuple[str, ...] = ()) -> Flask:
    made = Flask(__name__)
    made.config.update(SECRET_KEY=key, SECRET_KEY_FALLBACKS=list(fallbacks))
    return made


def written(interface: SessionInterface, flask_app: Flask, data: dict[str, object]) -> str:
    with flask_app.test_request_context("/") as ctx:
        session = interface.open_session(flask_app, ctx.request)
        assert session is not None
        session.update(data)
        response = flask_app.response_class()
        interface.save_session(flask_app, session, response)
    return response.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]


def read(interface: SessionInterface, flask_app: Flask, cookie: str) -> dict[str, object]:
    with flask_app.test_request_context("/", headers={"Cookie": f"session={cookie}"}) as ctx:
        return dict(interface.open_session(flask_app, ctx.request) or {})


def test_each_reads_what_the_other_writes() -> None:
    flask_own, ours = SecureCookieSessionInterface(), CookieSessions()
    for data in (DATA, LONG):
        assert read(ours, app(), written(flask_own, app(), data)) == data
        assert read(flask_own, app(), written(ours, app(), data)) == data
        assert read(ours, app(), written(ours, app(), data)) == data


def test_a_cookie_signed_with_a_fallback_key_reads_and_a_tampered_one_does_not() -> None:
    ours = CookieSessions()
    old = written(SecureCookieSessionInterface(), app("old-key"), DATA)

    assert read(ours, app("new-key", fallbacks=("old-key",)), old) == DATA
    assert read(ours, app("new-key"), old) == {}
    tampered = old.replace(old[10], "A" if old[10] != "A" else "B", 1)
    assert read(ours, app("new-key", fallbacks=("old-key",)), tampered) == {}


def test_a_new_key_makes_a_new_serializer() -> None:
    ours = CookieSessions()
    first = written(ours, app("one"), DATA)
    assert read(ours, app("two"), first) == {}
    assert read(ours, app("one"), first) == DATA
