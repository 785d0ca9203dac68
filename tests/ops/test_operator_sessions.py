"""Operator sessions are rows on the server: a cookie signed with the secret key opens nothing
without one, and logging out, a new role, a new password and the End button each end them."""

from __future__ import annotations

import hashlib
from typing import Any

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from drip.cli import cli
from drip.core.clock import FrozenClock
from drip.core.config import Settings
from drip.services import Services
from drip.store.models import AuditEntry, Operator, OperatorSession, Role
from tests.conftest import count
from tests.ops.test_roles import OWNER, VIEWER, add, client_for, token
from tests.web.test_admin_access import csrf_token, log_in

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def forged(app: Flask, contents: dict[str, Any]) -> FlaskClient:
    """A client whose session cookie was made with the app's secret key, not by logging in."""
    web = app.test_client()
    cookie = app.session_interface.get_signing_serializer(app).dumps(contents)  # type: ignore[attr-defined]
    web.set_cookie("session", cookie)
    return web


def rows_of(svc: Services, email: str) -> int:
    with svc.sessions() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(OperatorSession)
                .join(Operator, Operator.id == OperatorSession.operator_id)
                .where(Operator.email == email)
            )
            or 0
        )


def test_a_cookie_made_with_the_secret_key_alone_opens_nothing(app: Flask) -> None:
    svc: Services = app.extensions["drip"]
    owner_id = add(svc, OWNER, Role.owner)
    with svc.sessions() as session:
        owner = session.get(Operator, owner_id)
        assert owner is not None
        # What the login used to put in the cookie: the id and a hash of the password hash.
        version = hashlib.sha256(f"{owner.password_hash}\0{0}".encode()).hexdigest()[:16]
    minted = [
        {"operator_id": owner_id, "operator_version": version},
        {"operator_session": "made-up-session-id", "operator_id": owner_id},
    ]
    for contents in minted:
        answer = forged(app, contents).get("/admin/operators")
        assert answer.status_code == 302, contents
        assert answer.location.startswith("/admin/login")
    assert client_for(app, OWNER).get("/admin/operators").status_code == 200


def test_the_database_keeps_a_hash_of_the_cookies_session_id_not_the_id(app: Flask) -> None:
    svc: Services = app.extensions["drip"]
    add(svc, OWNER, Role.owner)
    web = client_for(app, OWNER)
    cookie = web.get_cookie("session")
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    session_id = serializer.loads(cookie.value)["operator_session"]
    with svc.sessions() as session:
        stored = session.scalars(select(OperatorSession.token_hash)).all()
    assert stored == [hashlib.sha256(session_id.encode()).hexdigest()]


def test_logging_out_ends_that_browsers_session_row_and_no_other(app: Flask) -> None:
    svc: Services = app.extensions["drip"]
    add(svc, OWNER, Role.owner)
    laptop, phone = client_for(app, OWNER), client_for(app, OWNER)
    assert rows_of(svc, OWNER) == 2
    copied = laptop.get_cookie("session")
    assert copied is not None
    assert laptop.post("/admin/logout", data={"csrf_token": token(laptop)}).status_code == 302
    assert rows_of(svc, OWNER) == 1
    thief = app.test_client()
    thief.set_cookie("session", copied.value)
    assert thief.get("/admin/").status_code == 302
    assert phone.get("/admin/").status_code == 200


def test_a_new_role_ends_every_session_of_that_operator(app: Flask) -> None:
    svc: Services = app.extensions["drip"]
    add(svc, OWNER, Role.owner)
    viewer_id = add(svc, VIEWER, Role.viewer)
    owner, viewer = client_for(app, OWNER), client_for(app, VIEWER)
    answer = owner.post(
        f"/admin/operators/{viewer_id}/role", data={"csrf_token": token(owner), "role": "editor"}
    )
    assert answer.status_code == 302
    assert rows_of(svc, VIEWER) == 0 and rows_of(svc, OWNER) == 1
    assert viewer.get("/admin/").status_code == 302


def test_an_operator_sees_and_ends_their_own_sessions_but_not_anothers(app: Flask) -> None:
    svc: Services = app.extensions["drip"]
    add(svc, OWNER, Role.owner)
    add(svc, VIEWER, Role.viewer)
    owner = client_for(app, OWNER)
    laptop = client_for(app, VIEWER)
    phone = app.test_client()
    phone.environ_base["HTTP_USER_AGENT"] = FIREFOX
    assert log_in(phone, email=VIEWER, ip="203.0.113.9").status_code == 302
    page = laptop.get("/admin/account")
    assert page.status_code == 200
    assert "Firefox/128.0" in page.text and "203.0.113.9" in page.text
    assert page.text.count(">End session</button>") == 2 and "(this browser)" in page.text
    with svc.sessions() as session:
        ids = dict(
            session.execute(
                select(OperatorSession.ip, OperatorSession.id).join(
                    Operator, Operator.id == OperatorSession.operator_id
                )
            ).all()
        )
        owners = session.scalar(
            select(OperatorSession.id)
            .join(Operator, Operator.id == OperatorSession.operator_id)
            .where(Operator.email == OWNER)
        )
    csrf = token(laptop)
    refused = laptop.post(f"/admin/account/sessions/{owners}/revoke", data={"csrf_token": csrf})
    assert refused.status_code == 404
    assert owner.get("/admin/").status_code == 200
    ended = laptop.post(
        f"/admin/account/sessions/{ids['203.0.113.9']}/revoke", data={"csrf_token": csrf}
    )
    assert ended.status_code == 302
    assert phone.get("/admin/").status_code == 302 and laptop.get("/admin/").status_code == 200
    with svc.sessions() as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry is not None and entry.operator_email == VIEWER
    assert entry.action == "revoke session" and "203.0.113.9" in entry.target


def test_owners_see_and_end_everyones_sessions_on_the_operators_page(app: Flask) -> None:
    svc: Services = app.extensions["drip"]
    add(svc, OWNER, Role.owner)
    viewer_id = add(svc, VIEWER, Role.viewer)
    owner = client_for(app, OWNER)
    viewer = app.test_client()
    viewer.environ_base["HTTP_USER_AGENT"] = FIREFOX
    assert log_in(viewer, email=VIEWER).status_code == 302
    page = owner.get("/admin/operators")
    assert "Firefox/128.0" in page.text and f"End session 2 of {VIEWER}" in page.text
    csrf = csrf_token(page.text)
    denied = viewer.post(
        f"/admin/operators/{viewer_id}/sessions/2/revoke", data={"csrf_token": token(viewer)}
    )
    assert denied.status_code == 403  # a viewer ends only their own, on their account page
    answer = owner.post(
        f"/admin/operators/{viewer_id}/sessions/2/revoke", data={"csrf_token": csrf}
    )
    assert answer.status_code == 302
    assert viewer.get("/admin/").status_code == 302 and owner.get("/admin/").status_code == 200
    assert rows_of(svc, VIEWER) == 0
    assert (
        owner.post(
            f"/admin/operators/{viewer_id}/sessions/1/revoke", data={"csrf_token": csrf}
        ).status_code
        == 404
    )  # session 1 is the owner's, not the viewer's
    with svc.sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.operator_email == OWNER)
        )
        assert "revoke session" in list(actions)


def test_a_session_unused_for_two_weeks_ends(app: Flask, clock: FrozenClock) -> None:
    svc: Services = app.extensions["drip"]
    add(svc, VIEWER, Role.viewer)
    daily, idle = client_for(app, VIEWER), client_for(app, VIEWER)
    for _ in range(15):
        clock.advance(days=1)
        assert daily.get("/admin/").status_code == 200
    assert idle.get("/admin/").status_code == 302
    assert "Not logged in anywhere" not in daily.get("/admin/account").text
    assert daily.get("/admin/account").text.count(">End session</button>") == 1
    client_for(app, VIEWER)  # the next login clears rows idle past the limit
    assert count(svc, OperatorSession) == 2


def test_a_new_password_from_drip_admin_password_ends_every_session_of_that_operator(
    app: Flask, settings: Settings
) -> None:
    svc: Services = app.extensions["drip"]
    add(svc, VIEWER, Role.viewer)
    first, second = client_for(app, VIEWER), client_for(app, VIEWER)
    env = {
        "DRIP_DATA_DIR": str(settings.data_dir),
        "DRIP_DATABASE_URL": settings.database_url,
        "DRIP_SEQUENCES_DIR": str(settings.sequences_dir),
        "DRIP_SECRET_KEY": settings.secret_key,
        "DRIP_ADMIN_PASSWORD": "another long password",
    }
    result = CliRunner().invoke(cli, ["admin", "password", VIEWER], env=env)
    assert result.exit_code == 0, result.output
    assert rows_of(svc, VIEWER) == 0
    assert first.get("/admin/").status_code == 302 and second.get("/admin/").status_code == 302


def test_drip_admin_end_sessions_ends_one_operators_or_everyones(
    app: Flask, settings: Settings
) -> None:
    svc: Services = app.extensions["drip"]
    add(svc, OWNER, Role.owner)
    add(svc, VIEWER, Role.viewer)
    owner, viewer = client_for(app, OWNER), client_for(app, VIEWER)
    env = {
        "DRIP_DATA_DIR": str(settings.data_dir),
        "DRIP_DATABASE_URL": settings.database_url,
        "DRIP_SEQUENCES_DIR": str(settings.sequences_dir),
        "DRIP_SECRET_KEY": settings.secret_key,
    }
    runner = CliRunner()
    one = runner.invoke(cli, ["admin", "end-sessions", VIEWER.upper()], env=env)
    assert one.exit_code == 0 and f"ended 1 session(s) of {VIEWER}" in one.output
    assert viewer.get("/admin/").status_code == 302 and owner.get("/admin/").status_code == 200
    unknown = runner.invoke(cli, ["admin", "end-sessions", "nobody@example.org"], env=env)
    assert unknown.exit_code == 1 and "there is no operator nobody@example.org" in unknown.output
    client_for(app, VIEWER)
    everyone = runner.invoke(cli, ["admin", "end-sessions"], env=env)
    assert everyone.exit_code == 0 and "ended 2 session(s) of every operator" in everyone.output
    assert owner.get("/admin/").status_code == 302 and count(svc, OperatorSession) == 0
