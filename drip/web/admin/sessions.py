"""Where an operator is logged in, and ending a session: /admin/account for one's own
(any role), and the Operators page's buttons for everyone's (owners).

A blueprint nested in the admin's, so its login check, roles and audit log apply. Ending a
session is deleting its row (drip.ops.operator_sessions): that browser's next request goes to the
login page, whatever its cookie says.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from drip.ops.operator_sessions import describe, end_session, sessions_of
from drip.ops.stats import when
from drip.store.models import Operator, Role
from drip.web.admin.access import audit, requires
from drip.web.context import db_session, services

bp = Blueprint("sessions", __name__)


@bp.get("/account")
def account() -> ResponseReturnValue:
    """The logged-in operator's own sessions, this one marked."""
    operator: Operator = g.operator
    now = services().clock()
    return render_template(
        "admin/account.html",
        sessions=sessions_of(db_session(), [operator.id], now).get(operator.id, []),
        current=g.get("operator_session_id"),
        now=now,
        when=when,
    )


def _end(operator_id: int, session_id: int, email: str) -> None:
    """End the session or 404; audited with where it was, committed."""
    session = db_session()
    row = end_session(session, session_id, operator_id)
    if row is None:
        abort(404)
    audit("revoke session", f"{email}: {describe(row)}")
    session.commit()


@bp.post("/account/sessions/<int:session_id>/revoke")
@requires(Role.viewer)
def revoke_mine(session_id: int) -> ResponseReturnValue:
    """Any operator may end their own sessions (a browser left logged in elsewhere); only
    theirs: another operator's session id is a 404 here."""
    operator: Operator = g.operator
    _end(operator.id, session_id, operator.email)
    if session_id == g.get("operator_session_id"):
        return redirect(url_for("admin.auth.login"))
    flash("Session ended: that browser must log in again.", "ok")
    return redirect(url_for("admin.sessions.account"))


@bp.post("/operators/<int:operator_id>/sessions/<int:session_id>/revoke")
def revoke(operator_id: int, session_id: int) -> ResponseReturnValue:
    """An owner ends any operator's session (the default role of a POST)."""
    operator = db_session().get(Operator, operator_id) or abort(404)
    _end(operator.id, session_id, operator.email)
    if session_id == g.get("operator_session_id"):
        return redirect(url_for("admin.auth.login"))
    flash(f"Session of {operator.email} ended: that browser must log in again.", "ok")
    return redirect(url_for("admin.operators.index"))
