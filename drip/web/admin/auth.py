"""Logging in and out of the admin: a login opens a session row (drip.ops.operator_sessions)
and is written to the audit log; failed ones are throttled."""

from __future__ import annotations

from datetime import datetime

from flask import (
    Blueprint,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as web_session
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.ops import audit as audit_log
from drip.ops import operator_sessions
from drip.ops.operators import (
    authenticate,
)
from drip.store.models import (
    Operator,
    Role,
)
from drip.web.admin import access
from drip.web.admin.access import audit, requires
from drip.web.admin.redirects import safe_next
from drip.web.context import db_session, services

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("admin/login.html", next=target, email="", error=None)
    email = request.form.get("email", "")
    session = db_session()
    now = services().clock()
    result = authenticate(
        session, email, request.form.get("password", ""), request.remote_addr or "unknown", now
    )
    _log_login(session, email, result.operator, result.throttled, now)
    if result.operator is None:
        session.commit()
        error, status = (
            ("Too many failed logins. Wait 15 minutes and try again.", 429)
            if result.throttled
            else ("Wrong email or password.", 401)
        )
        return render_template("admin/login.html", next=target, email=email, error=error), status
    agent = request.headers.get("User-Agent", "")
    token = operator_sessions.open_session(
        session, result.operator, now, request.remote_addr or "", agent
    )
    session.commit()  # the login, its audit entry and its session row together
    web_session.clear()  # nothing from before the login carries over (session fixation)
    web_session[access.SESSION_KEY] = token
    return redirect(target)


def _log_login(
    session: Session, email: str, operator: Operator | None, throttled: bool, now: datetime
) -> None:
    """A login, or a wrong password for an operator's address (an owner sees someone trying
    an account); nothing for unknown addresses (what was typed may be a password) or for
    throttled attempts (refused before any check, and a guesser could fill the log)."""
    if operator is not None:
        audit_log.record(session, operator.email, "log in", "", now)
        return
    address = email.strip().lower()
    if not throttled and session.scalar(select(Operator.id).where(Operator.email == address)):
        audit_log.record(session, address, "failed login", "wrong password", now)


@bp.post("/logout")
@requires(Role.viewer)
def logout() -> ResponseReturnValue:
    """Ends this browser's session (its row goes); the operator's other sessions stay, and
    are ended one by one on their account page."""
    session = db_session()
    operator_sessions.end_session(session, g.operator_session_id, g.operator.id)
    audit("log out", "")
    session.commit()
    web_session.clear()
    return redirect(url_for("admin.auth.login"))
