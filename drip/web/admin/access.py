"""Who may do what in the admin, and the record of what they did.

Each admin view has a least role (drip.store.models.Role). Safe by default: a GET needs a viewer
and anything else an owner, unless the view is marked with `@requires(...)`; so a new POST
route is owner-only until someone decides otherwise, and a test walks every POST rule. The
role is looked up through `current_app.view_functions[request.endpoint]`, so views of
blueprints nested in the admin's are checked the same way.

Every POST that succeeds is written to the audit log (drip.ops.audit) after the view, unless the
view wrote its own entry with `audit()` (content changes do, with the text before and after).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, render_template, request
from flask import session as web_session
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from drip.ops.audit import record
from drip.ops.operator_sessions import SEEN_EVERY, find_session, mark_seen
from drip.store.models import Operator, Role
from drip.web.context import db_session, services

F = TypeVar("F", bound=Callable[..., Any])

READS = frozenset({"GET", "HEAD", "OPTIONS"})
_LEAST_ROLE = "drip_least_role"
_UNRECORDED = "drip_unrecorded"
# Never written to the log: secrets, and what only confirms a click (an erased address).
_SECRET_WORDS = ("password", "secret", "token", "csrf")
_LEFT_OUT = frozenset({"back", "next", "confirm_email"})
_LONGEST_VALUE = 200


def requires(role: Role) -> Callable[[F], F]:
    """Mark a view's least role: `@requires(Role.editor)` on a content POST, or
    `@requires(Role.owner)` on a GET only owners may read. Goes under the route decorator
    or over it: it marks the function itself."""

    def mark(view: F) -> F:
        setattr(view, _LEAST_ROLE, role)
        return view

    return mark


def unrecorded(view: F) -> F:
    """Mark a POST that changes nothing (the studio's preview of unsaved text, posted as
    the author types): it is not written to the audit log."""
    setattr(view, _UNRECORDED, True)
    return view


def least_role(endpoint: str | None, method: str) -> Role:
    """The role a request to `endpoint` with `method` needs."""
    view = current_app.view_functions.get(endpoint or "")
    marked = getattr(view, _LEAST_ROLE, None)
    if isinstance(marked, Role):
        return marked
    return Role.viewer if method in READS else Role.owner


SESSION_KEY = "operator_session"  # in Flask's signed cookie: the random id of the session row


def current_operator() -> Operator | None:
    """The operator logged in on this request, or None (logged out, their session ended, or
    the account was removed). The cookie's signature is not enough: its session id must
    match a row (drip.ops.operator_sessions), so the secret key alone opens nothing."""
    if g.get("operator") is not None:
        operator: Operator = g.operator
        return operator
    svc = services()
    now = svc.clock()
    row = find_session(db_session(), web_session.get(SESSION_KEY), now)
    if row is None:
        return None
    g.operator_session_id = row.id
    if now - row.last_seen_at >= SEEN_EVERY:  # its own transaction: a page view commits nothing
        with svc.sessions() as session:
            mark_seen(session, row, now)
            session.commit()
    return db_session().get(Operator, row.operator_id)


def may(endpoint: str, method: str = "POST") -> bool:
    """For the templates: whether to show a button (or link) to `endpoint`."""
    operator = current_operator()
    return operator is not None and operator.role.allows(least_role(endpoint, method))


def readable(endpoint: str | None) -> str:
    """An endpoint as an action's name: admin.reader.suppress -> "reader: suppress",
    admin.cancel_broadcast_view -> "cancel broadcast", admin.studio.save -> "studio: save"."""
    words = (endpoint or "").removeprefix("admin.").replace(".", ": ").replace("_", " ")
    return words.removesuffix(" view").removesuffix(" page")


def _a(role: Role) -> str:
    return f"{'an' if role.value[0] in 'aeiou' else 'a'} {role.value}"


def refuse_unless_allowed(operator: Operator) -> ResponseReturnValue | None:
    """None if the operator's role is enough for this request; else the 403 page, which says
    the role it needs."""
    needed = least_role(request.endpoint, request.method)
    if operator.role.allows(needed):
        return None
    what = readable(request.endpoint).capitalize()
    message = (
        f"{what} needs the {needed.value} role (or higher); you are logged in as "
        f"{operator.email}, {_a(operator.role)}. An owner can change your role on the "
        "Operators page."
    )
    return (
        render_template(
            "admin/error.html", code=403, title="Not allowed for your role", message=message
        ),
        403,
    )


def audit(action: str, target: str, *, before: str | None = None, after: str | None = None) -> None:
    """Record what the logged-in operator just did, in the request's session: the view's
    commit writes it together with the change (call it once the change is made). The
    request is then not recorded again after the view."""
    operator = current_operator()
    if operator is None:
        raise RuntimeError("audit() needs a logged-in operator")
    record(db_session(), operator.email, action, target, services().clock(), before, after)
    g.audited = True


def note_failure(_sender: Any, message: str, category: str, **_extra: Any) -> None:
    """Connected to Flask's `message_flashed`: a view that flashes an error did not do what
    was asked, so there is nothing to record."""
    if category == "error":
        g.action_failed = True


def _target() -> str:
    """What the request acted on: the URL's ids and the form fields that say what was asked,
    never passwords, tokens or the address typed to confirm an erasure."""
    parts = [f"{key}={value}" for key, value in (request.view_args or {}).items()]
    for key in request.form:
        if key in _LEFT_OUT or any(word in key.lower() for word in _SECRET_WORDS):
            continue
        value = " ".join(request.form.getlist(key))
        cut = value if len(value) <= _LONGEST_VALUE else value[: _LONGEST_VALUE - 1] + "…"
        parts.append(f"{key}={cut}")
    parts.extend(f"{key}={upload.filename}" for key, upload in request.files.items())
    return " ".join(parts)


def record_change(response: Response) -> Response:
    """After an admin POST that succeeded (no error answer, no error flashed), the entry
    saying who did it; in a session of its own, so nothing the view left in its session
    is committed with it. It follows the view's commit, so a crash in between loses the
    entry, never the change; `audit()` in the view writes both in one transaction."""
    email = g.get("operator_email")
    if (
        request.method in READS
        or email is None
        or g.get("audited")
        or g.get("action_failed")
        or getattr(current_app.view_functions.get(request.endpoint or ""), _UNRECORDED, False)
        or response.status_code >= 400
    ):
        return response
    svc = services()
    with svc.sessions() as session:
        record(session, email, readable(request.endpoint), _target(), svc.clock())
        session.commit()
    return response
