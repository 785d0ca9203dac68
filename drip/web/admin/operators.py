"""The operators (owners only): adding one, changing a role, removing one; and the audit log."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from drip.ops import audit as audit_log
from drip.ops import operator_sessions
from drip.ops.operators import (
    OperatorError,
    create_operator,
    new_password,
    operators,
    remove_operator,
    set_role,
)
from drip.ops.stats import (
    when,
)
from drip.store.models import (
    Operator,
    Role,
)
from drip.web.admin.access import requires
from drip.web.admin.reader_filters import cursor as _cursor
from drip.web.context import db_session, services

bp = Blueprint("operators", __name__)


def _role(value: str | None) -> Role | None:
    return Role(value) if value in {r.value for r in Role} else None


def _operators_page(created: tuple[Operator, str] | None = None) -> ResponseReturnValue:
    everyone = operators(db_session())
    now = services().clock()
    return render_template(
        "admin/operators.html",
        operators=everyone,
        sessions=operator_sessions.sessions_of(db_session(), [o.id for o in everyone], now),
        current=g.get("operator_session_id"),
        roles=list(Role),
        created=created,
        now=now,
        when=when,
    )


@bp.get("/operators")
@requires(Role.owner)
def index() -> ResponseReturnValue:
    return _operators_page()


@bp.post("/operators")
def add() -> ResponseReturnValue:
    """drip picks the new operator's password and shows it on this page only (not in a flash,
    which would travel in the session cookie); the owner hands it over."""
    session = db_session()
    role = _role(request.form.get("role"))
    if role is None:
        flash("Not added: choose a role (viewer, editor or owner).", "error")
        return redirect(url_for("admin.operators.index"))
    password = new_password()
    try:
        operator = create_operator(
            session, request.form.get("email", ""), password, services().clock(), role
        )
    except OperatorError as error:
        session.rollback()
        flash(f"Not added: {error}.", "error")
        return redirect(url_for("admin.operators.index"))
    session.commit()
    return _operators_page(created=(operator, password))


def _operator_or_404(session: Session, operator_id: int) -> Operator:
    return session.get(Operator, operator_id) or abort(404)


@bp.post("/operators/<int:operator_id>/role")
def change_role(operator_id: int) -> ResponseReturnValue:
    session = db_session()
    operator = _operator_or_404(session, operator_id)
    role = _role(request.form.get("role"))
    if role is None:
        flash("Role not changed: choose viewer, editor or owner.", "error")
        return redirect(url_for("admin.operators.index"))
    try:
        changed = set_role(session, operator, role)
    except OperatorError as error:
        session.rollback()
        flash(f"Role not changed: {error}.", "error")
        return redirect(url_for("admin.operators.index"))
    session.commit()
    if changed:
        flash(f"{operator.email} is now {role.value}; their sessions ended.", "ok")
    else:
        flash(f"{operator.email} was {role.value} already.", "ok")
    return redirect(url_for("admin.operators.index"))


@bp.post("/operators/<int:operator_id>/remove")
def remove(operator_id: int) -> ResponseReturnValue:
    session = db_session()
    operator = _operator_or_404(session, operator_id)
    email = operator.email
    try:
        remove_operator(session, operator)
    except OperatorError as error:
        session.rollback()
        flash(f"Not removed: {error}.", "error")
        return redirect(url_for("admin.operators.index"))
    session.commit()
    flash(f"{email} removed; their sessions ended. The audit log keeps what they did.", "ok")
    return redirect(url_for("admin.operators.index"))


@bp.get("/audit")
@requires(Role.owner)
def audit() -> ResponseReturnValue:
    """Who did what, newest first, optionally one operator's; content changes as diffs."""
    chosen = request.args.get("operator", "").strip().lower()
    session = db_session()
    return render_template(
        "admin/audit.html",
        page=audit_log.entries_page(session, _cursor(), chosen),
        chosen=chosen,
        known=[o.email for o in operators(session)],
        diff=audit_log.diff,
    )
