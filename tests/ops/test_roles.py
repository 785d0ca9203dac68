"""Operator roles in the admin: what a viewer, an editor and an owner may do, the audit log
of what they did, and the owners' page for operators."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from drip.cli import cli
from drip.core.clock import FrozenClock
from drip.ops.audit import diff, entries_page, record
from drip.ops.operators import OperatorError, create_operator, remove_operator, set_role
from drip.services import Services, build_services
from drip.store.db import make_engine
from drip.store.models import AuditEntry, Operator, Role, Subscriber
from drip.store.queries import Cursor
from drip.web.admin.access import audit, requires
from drip.web.context import db_session
from tests.conftest import TESTS, enroll, make_settings
from tests.web.test_admin_access import PASSWORD, csrf_token, fill, log_in

OWNER = "owner@example.org"
EDITOR = "editor@example.org"
VIEWER = "viewer@example.org"
# The POST routes every role may use: logging in and out, ending one of their own sessions.
# Any other POST a viewer could use must be added here on purpose.
OPEN_TO_VIEWERS = {"admin.auth.login", "admin.auth.logout", "admin.sessions.revoke_mine"}
# The POST routes an editor may use besides those: content. Every other change needs an owner.
FOR_EDITORS = {
    "admin.probe.save_lesson",
    "admin.magnet_build.start",
    "admin.broadcasts.write",
    "admin.broadcasts.test",
    "admin.broadcasts.edit",
    "admin.site.save",
    "admin.site.restore",
    "admin.experiments.promote",  # writes the winning variant into the lesson file
    *(
        f"admin.studio.{view}"
        for view in (
            "save_lesson",
            "lesson_preview",
            "add_lesson",
            "new_lesson_preview",
            "move",
            "remove",
            "history.restore_lesson",
            "magnet.save",
            "magnet.preview",
            "history.restore_file",
            "settings.save",
            "test_confirmation",
        )
    ),
}
# The pages only owners may read: a new one must be added here on purpose.
OWNERS_ONLY_PAGES = {
    "admin.operators.audit",
    "admin.operators.index",
    "admin.imports.export_csv",
    "admin.readers.export_selected",
    "admin.reader.export",
}


def add(svc: Services, email: str, role: Role) -> int:
    with svc.sessions() as session:
        operator = create_operator(session, email, PASSWORD, svc.clock(), role)
        session.commit()
        return operator.id


@pytest.fixture
def studio(app: Flask) -> Flask:
    """A blueprint nested in the admin's, registered as `admin.bp.register_blueprint(...)`
    does it (the name and URL prefixed by the admin's), with one content POST for editors."""
    probe = Blueprint("probe", __name__)

    @probe.post("/lessons/<slug>")
    @requires(Role.editor)
    def save_lesson(slug: str) -> str:
        audit("save lesson", slug, before="Hello\nold line\nBye", after="Hello\nnew line\nBye")
        db_session().commit()
        return "saved"

    app.register_blueprint(probe, name_prefix="admin", url_prefix="/admin/probe")
    return app


@pytest.fixture
def staff(studio: Flask) -> Services:
    svc: Services = studio.extensions["drip"]
    add(svc, OWNER, Role.owner)
    add(svc, EDITOR, Role.editor)
    add(svc, VIEWER, Role.viewer)
    return svc


def client_for(app: Flask, email: str) -> FlaskClient:
    web = app.test_client()
    assert log_in(web, email=email).status_code == 302
    return web


def token(web: FlaskClient) -> str:
    return csrf_token(web.get("/admin/").text)


def audit_rows(svc: Services) -> list[tuple[str, str, str]]:
    with svc.sessions() as session:
        return [
            (e.operator_email, e.action, e.target)
            for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def post_rules(app: Flask) -> list[tuple[str, str]]:
    return sorted(
        (rule.endpoint, fill(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/admin") and "POST" in (rule.methods or set())
    )


def test_a_viewer_is_refused_every_admin_post_route(studio: Flask, staff: Services) -> None:
    enroll(staff)
    viewer = client_for(studio, VIEWER)
    csrf = token(viewer)
    rules = [(e, url) for e, url in post_rules(studio) if e not in OPEN_TO_VIEWERS]
    assert len(rules) >= 15 and ("admin.probe.save_lesson", "/admin/probe/lessons/tiny") in rules
    before = audit_rows(staff)
    for endpoint, url in rules:
        answer = viewer.post(url, data={"csrf_token": csrf, "confirm_email": "ada@example.org"})
        assert answer.status_code == 403, (endpoint, url, answer.status_code)
        assert "Not allowed for your role" in answer.text, endpoint
        assert "you are logged in as viewer@example.org, a viewer" in answer.text, endpoint
    assert audit_rows(staff) == before  # nothing was done, so nothing is recorded
    with staff.sessions() as session:
        assert session.scalar(select(Subscriber.email)) == "ada@example.org"


def test_an_editor_is_refused_every_admin_post_route_but_the_content_ones(
    studio: Flask, staff: Services
) -> None:
    enroll(staff)
    editor = client_for(studio, EDITOR)
    csrf = token(editor)
    for endpoint, url in post_rules(studio):
        if endpoint in OPEN_TO_VIEWERS:
            continue
        answer = editor.post(url, data={"csrf_token": csrf, "confirm_email": "ada@example.org"})
        if endpoint in FOR_EDITORS:  # let through; what an empty form gets is the view's affair
            assert answer.status_code != 403, endpoint
        else:
            assert answer.status_code == 403, (endpoint, url, answer.status_code)
            assert "needs the owner role" in answer.text, endpoint


def test_an_editor_is_refused_owner_actions_but_may_use_a_route_marked_for_editors(
    studio: Flask, staff: Services
) -> None:
    enroll(staff)
    with staff.sessions() as session:
        reader = session.scalars(select(Subscriber.id)).one()
    editor = client_for(studio, EDITOR)
    csrf = token(editor)
    for url in (
        f"/admin/readers/{reader}/erase",
        f"/admin/readers/{reader}/suppress",
        "/admin/sending/resume",
        "/admin/sequences/tiny/pause",
        "/admin/operators",
    ):
        answer = editor.post(url, data={"csrf_token": csrf, "confirm_email": "ada@example.org"})
        assert answer.status_code == 403, url
        assert "needs the owner role" in answer.text, url
    with staff.sessions() as session:
        assert session.scalar(select(Subscriber.suppressed_at)) is None
    saved = editor.post("/admin/probe/lessons/welcome", data={"csrf_token": csrf})
    assert saved.status_code == 200 and saved.text == "saved"
    viewer = client_for(studio, VIEWER)
    refused = viewer.post("/admin/probe/lessons/welcome", data={"csrf_token": token(viewer)})
    assert refused.status_code == 403 and "Probe: save lesson needs the editor role" in refused.text
    # audit() was called: one entry, not a second one from the automatic record.
    assert [row for row in audit_rows(staff) if row[0] == EDITOR and row[1] != "log in"] == [
        (EDITOR, "save lesson", "welcome")
    ]


def test_a_viewer_may_open_every_admin_page_but_the_owners_ones(
    studio: Flask, staff: Services
) -> None:
    enroll(staff)
    viewer = client_for(studio, VIEWER)
    rules = [
        r
        for r in studio.url_map.iter_rules()
        if r.rule.startswith("/admin") and "GET" in (r.methods or set())
    ]
    assert {r.endpoint for r in rules} >= OWNERS_ONLY_PAGES
    for rule in rules:
        answer = viewer.get(fill(rule.rule))
        if rule.endpoint in OWNERS_ONLY_PAGES:
            assert answer.status_code == 403, rule.rule
        else:  # a page, or no such row for the made-up id
            assert answer.status_code in (200, 404), (rule.rule, answer.status_code)


def test_owner_only_pages_are_refused_to_editors_and_viewers(
    studio: Flask, staff: Services
) -> None:
    for email in (EDITOR, VIEWER):
        web = client_for(studio, email)
        for url in ("/admin/audit", "/admin/operators", "/admin/export.csv"):
            answer = web.get(url)
            assert answer.status_code == 403, (email, url)
            assert "needs the owner role" in answer.text
        assert web.get("/admin/readers").status_code == 200
        nav = web.get("/admin/").text
        assert "Audit log" not in nav and 'href="/admin/operators"' not in nav
    owner = client_for(studio, OWNER)
    nav = owner.get("/admin/").text
    assert 'href="/admin/audit"' in nav and 'href="/admin/operators"' in nav


def test_a_viewer_sees_no_action_buttons(studio: Flask, staff: Services) -> None:
    enroll(staff)
    with staff.sessions() as session:
        reader = session.scalars(select(Subscriber.id)).one()
    viewer = client_for(studio, VIEWER)
    owner = client_for(studio, OWNER)

    def actions(page: str) -> int:
        """The page's forms that change something, leaving out the log-out button (which
        the header carries twice: in the bar and in the phone's menu)."""
        return page.count('method="post"') - page.count('action="/admin/logout"')

    for url in (f"/admin/readers/{reader}", "/admin/sequences/tiny", "/admin/import"):
        assert actions(owner.get(url).text) > 0, url
        assert actions(viewer.get(url).text) == 0, url
    assert "Importing readers needs the owner role" in viewer.get("/admin/import").text


def test_every_admin_change_that_succeeds_is_in_the_audit_log_with_who_did_it(
    studio: Flask, staff: Services, clock: FrozenClock
) -> None:
    enroll(staff)
    with staff.sessions() as session:
        reader = session.scalars(select(Subscriber.id)).one()
    owner = client_for(studio, OWNER)
    csrf = token(owner)
    clock.advance(minutes=5)
    owner.post("/admin/sequences/tiny/pause", data={"csrf_token": csrf})
    owner.post(f"/admin/readers/{reader}/suppress", data={"csrf_token": csrf})
    owner.post(f"/admin/readers/{reader}/erase", data={"csrf_token": csrf, "confirm_email": "x"})
    editor = client_for(studio, EDITOR)
    editor.post("/admin/probe/lessons/welcome", data={"csrf_token": token(editor)})
    rows = [row for row in audit_rows(staff) if row[1] != "log in"]
    assert rows == [
        (OWNER, "sequences: pause or resume", "slug=tiny action=pause"),
        (OWNER, "reader: suppress", f"subscriber_id={reader}"),
        # the erasure with a wrong confirmation did nothing: not recorded
        (EDITOR, "save lesson", "welcome"),
    ]
    owner.post(
        f"/admin/readers/{reader}/erase",
        data={"csrf_token": csrf, "confirm_email": "ada@example.org"},
    )
    assert audit_rows(staff)[-1] == (OWNER, "erase reader", f"reader {reader}")
    owner.get("/admin/")  # shows (and so clears) the flashed messages
    log = owner.get("/admin/audit").text
    assert "sequences: pause or resume" in log and "slug=tiny action=pause" in log
    assert "ada@example.org" not in log  # the erased address is not kept in the log
    assert not any(csrf in target or "csrf" in target for _, _, target in audit_rows(staff))
    assert '<span class="removed">- old line</span>' in log
    assert '<span class="added">+ new line</span>' in log
    mine = owner.get(f"/admin/audit?operator={EDITOR}").text
    assert "save lesson" in mine and "reader: suppress" not in mine


def test_logins_and_wrong_passwords_for_an_operator_are_recorded(
    studio: Flask, staff: Services
) -> None:
    web = studio.test_client()
    assert log_in(web, email=VIEWER, password="not the password").status_code == 401
    assert log_in(web, email="stranger@example.org", password=PASSWORD).status_code == 401
    assert log_in(web, email=VIEWER).status_code == 302
    web.post("/admin/logout", data={"csrf_token": token(web)})
    assert audit_rows(staff) == [
        (VIEWER, "failed login", "wrong password"),
        (VIEWER, "log in", ""),
        (VIEWER, "log out", ""),
    ]


def test_the_audit_log_pages_by_id_and_filters_by_operator(
    backend_url: str, tmp_path: Path, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, backend_url), clock)
    with svc.sessions() as session:
        for n in range(7):
            record(session, OWNER if n % 2 else EDITOR, "pause", f"n={n}", clock())
        session.commit()
        first = entries_page(session, Cursor(), size=3)
        assert [r[0].target for r in first.rows] == ["n=6", "n=5", "n=4"] and first.total == 7
        second = entries_page(session, Cursor(after=first.older), size=3)
        assert [r[0].target for r in second.rows] == ["n=3", "n=2", "n=1"]
        last = entries_page(session, Cursor(last=True), size=3)
        assert [r[0].target for r in last.rows] == ["n=2", "n=1", "n=0"] and last.older is None
        owners = entries_page(session, Cursor(), operator=" Owner@Example.org", size=10)
        assert [r[0].target for r in owners.rows] == ["n=5", "n=3", "n=1"] and owners.total == 3
    svc.engine.dispose()


def test_a_diff_shows_changed_lines_with_their_context() -> None:
    lines = diff("a\nb\nc\n-- signature", "a\nB\nc")
    assert [(d.kind, d.text) for d in lines] == [
        ("gap", "@@ -1,4 +1,3 @@"),
        ("same", "a"),
        ("removed", "b"),
        ("added", "B"),
        ("same", "c"),
        ("removed", "-- signature"),
    ]
    assert diff(None, None) == []
    assert [d.kind for d in diff(None, "new")] == ["gap", "added"]


def test_the_last_owner_cannot_be_demoted_or_removed(
    backend_url: str, tmp_path: Path, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, backend_url), clock)
    with svc.sessions() as session:
        owner = create_operator(session, OWNER, PASSWORD, clock())
        editor = create_operator(session, EDITOR, PASSWORD, clock(), Role.editor)
        with pytest.raises(OperatorError, match="last owner and cannot be demoted"):
            set_role(session, owner, Role.editor)
        with pytest.raises(OperatorError, match="last owner and cannot be removed"):
            remove_operator(session, owner)
        assert set_role(session, editor, Role.owner)
        assert set_role(session, owner, Role.viewer)  # another owner is left
        with pytest.raises(OperatorError, match="last owner"):
            remove_operator(session, editor)
        remove_operator(session, owner)  # a viewer now
        session.commit()
        assert [(o.email, o.role) for o in session.scalars(select(Operator))] == [
            (EDITOR, Role.owner)
        ]
    svc.engine.dispose()


@pytest.mark.postgres
def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    postgres_url: str, tmp_path: Path, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, postgres_url), clock)
    with svc.sessions() as session:
        ids = [create_operator(session, e, PASSWORD, clock()).id for e in (OWNER, EDITOR)]
        session.commit()
    with svc.sessions() as first, svc.sessions() as second:
        set_role(first, first.get_one(Operator, ids[0]), Role.viewer)  # not committed yet
        second.execute(text("SET LOCAL lock_timeout = '200ms'"))
        with pytest.raises(OperationalError, match="lock timeout"):
            set_role(second, second.get_one(Operator, ids[1]), Role.viewer)  # waits for first
        second.rollback()
        first.commit()
        with pytest.raises(OperatorError, match="last owner"):
            set_role(second, second.get_one(Operator, ids[1]), Role.viewer)
    svc.engine.dispose()


def test_in_the_admin_the_last_owner_is_told_they_cannot_demote_themselves(
    studio: Flask, staff: Services
) -> None:
    owner = client_for(studio, OWNER)
    with staff.sessions() as session:
        me = session.scalar(select(Operator.id).where(Operator.email == OWNER))
    answer = owner.post(
        f"/admin/operators/{me}/role",
        data={"csrf_token": token(owner), "role": "viewer"},
        follow_redirects=True,
    )
    assert "owner@example.org is the last owner and cannot be demoted" in answer.text
    answer = owner.post(
        f"/admin/operators/{me}/remove", data={"csrf_token": token(owner)}, follow_redirects=True
    )
    assert "cannot be removed: make another operator an owner first" in answer.text
    assert owner.get("/admin/operators").status_code == 200  # still an owner, still logged in


def test_a_role_change_or_a_removal_ends_the_operators_sessions(
    studio: Flask, staff: Services
) -> None:
    owner = client_for(studio, OWNER)
    editor = client_for(studio, EDITOR)
    viewer = client_for(studio, VIEWER)
    with staff.sessions() as session:
        ids = dict(session.execute(select(Operator.email, Operator.id)).all())
    answer = owner.post(
        f"/admin/operators/{ids[EDITOR]}/role",
        data={"csrf_token": token(owner), "role": "viewer"},
        follow_redirects=True,
    )
    assert "editor@example.org is now viewer; their sessions ended" in answer.text
    assert editor.get("/admin/").location.startswith("/admin/login")
    assert log_in(editor, email=EDITOR).status_code == 302
    assert "you are logged in as editor@example.org, a viewer" in editor.get("/admin/audit").text
    owner.post(f"/admin/operators/{ids[VIEWER]}/remove", data={"csrf_token": token(owner)})
    assert viewer.get("/admin/").location.startswith("/admin/login")
    assert log_in(viewer, email=VIEWER).status_code == 401
    assert (OWNER, "operators: remove", f"operator_id={ids[VIEWER]}") in audit_rows(staff)
    assert (
        OWNER,
        "operators: change role",
        f"operator_id={ids[EDITOR]} role=viewer",
    ) in audit_rows(staff)


def test_an_owner_adds_an_operator_whose_password_is_shown_once_and_never_logged(
    studio: Flask, staff: Services
) -> None:
    owner = client_for(studio, OWNER)
    page = owner.post(
        "/admin/operators",
        data={"csrf_token": token(owner), "email": "New@Example.org", "role": "editor"},
    )
    assert page.status_code == 200 and "new@example.org added (editor)" in page.text
    password = page.text.split('id="new-password">')[1].split("<")[0]
    assert len(password) >= 20
    newcomer = studio.test_client()
    assert log_in(newcomer, email="new@example.org", password=password).status_code == 302
    assert password not in owner.get("/admin/operators").text
    assert password not in owner.get("/admin/audit").text
    assert (OWNER, "operators: add", "email=New@Example.org role=editor") in audit_rows(staff)
    again = owner.post(
        "/admin/operators",
        data={"csrf_token": token(owner), "email": "new@example.org", "role": "viewer"},
        follow_redirects=True,
    )
    assert "Not added: an operator new@example.org already exists." in again.text
    bad = owner.post(
        "/admin/operators",
        data={"csrf_token": token(owner), "email": "x@example.org", "role": "admin"},
        follow_redirects=True,
    )
    assert "Not added: choose a role" in bad.text
    with staff.sessions() as session:
        assert session.scalar(select(Operator).where(Operator.email == "x@example.org")) is None


def test_drip_admin_create_takes_a_role_and_makes_an_owner_by_default(
    tmp_path: Path, sqlite_url: str
) -> None:
    env = {
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": sqlite_url,
        "DRIP_SEQUENCES_DIR": str(TESTS / "sequences"),
        "DRIP_SECRET_KEY": "k",
        "DRIP_ADMIN_PASSWORD": PASSWORD,
    }
    runner = CliRunner()
    made = runner.invoke(cli, ["admin", "create", "v@example.org", "--role", "viewer"], env=env)
    assert made.exit_code == 0, made.output
    assert "operator v@example.org created (viewer)" in made.output
    first = runner.invoke(cli, ["admin", "create", "o@example.org"], env=env)
    assert "operator o@example.org created (owner)" in first.output
    wrong = runner.invoke(cli, ["admin", "create", "x@example.org", "--role", "boss"], env=env)
    assert wrong.exit_code == 2
    assert "'boss' is not one of 'viewer', 'editor', 'owner'" in wrong.output
    svc = build_services(make_settings(tmp_path, sqlite_url))
    with svc.sessions() as session:
        roles = dict(session.execute(select(Operator.email, Operator.role)).all())
    assert roles == {"v@example.org": Role.viewer, "o@example.org": Role.owner}
    svc.engine.dispose()


def test_operators_from_before_roles_are_owners(backend_url: str) -> None:
    engine = make_engine(backend_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO operators (email, password_hash, created_at) "
                "VALUES ('old@example.org', 'x', CURRENT_TIMESTAMP)"
            )
        )
        assert conn.scalar(text("SELECT role FROM operators")) == "owner"
    engine.dispose()
