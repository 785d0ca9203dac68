"""The admin blueprint at /admin: what every operator page shares, and the areas nested in
it, each a blueprint of its own module (auth, dashboard, readers, reader, deliveries,
sequences, imports, integrations, operators; the studio, experiments, broadcasts, segments,
account, replies). Handlers are thin: they read the request, call plain functions of a
session and a clock, commit, and render.

Access: every view but the login page needs a logged-in operator (`require_operator`); the
cookie holds the random id of a session row (drip.ops.operator_sessions), looked up on every
request, so a cookie signed with the secret key but matching no row opens nothing. Each view
also needs a role (drip.web.admin.access: a page needs a viewer, a change an owner, unless marked
with `@requires`), and every change that succeeds goes to the audit log. CSRF is checked
app-wide by Flask-WTF.
"""

from __future__ import annotations

import zoneinfo
from functools import cache

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    message_flashed,
    redirect,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from drip.web.admin import (
    access,
    auth,
    dashboard,
    deliveries,
    imports,
    integrations,
    operators,
    problem_links,
)
from drip.web.admin import broadcasts as broadcasts_admin
from drip.web.admin import reader as reader_page
from drip.web.admin import readers as readers_list
from drip.web.admin import replies as replies_admin
from drip.web.admin import segments as segments_admin
from drip.web.admin import sequences as sequences_list
from drip.web.admin import sessions as sessions_admin
from drip.web.admin.access import current_operator
from drip.web.admin.reader_filters import MAX_ID
from drip.web.studio import experiments, magnet_build
from drip.web.studio import lessons as studio
from drip.web.studio import site as site_editor

bp = Blueprint("admin", __name__, url_prefix="/admin")
# Nested blueprints: the login check and the roles below apply to their views too.
for area in (
    auth.bp,  # /admin/login, /admin/logout
    dashboard.bp,  # /admin/
    readers_list.bp,  # /admin/readers and its bulk actions
    reader_page.bp,  # /admin/readers/<id>
    deliveries.bp,  # /admin/deliveries, /admin/outbox
    sequences_list.bp,  # /admin/sequences
    imports.bp,  # /admin/import, /admin/export.csv
    integrations.bp,  # /admin/integrations
    operators.bp,  # /admin/operators, /admin/audit
    studio.bp,  # the course editor
    experiments.bp,  # a lesson's variants and the winner's promotion
    magnet_build.bp,  # /admin/sequences/<slug>/magnet/build
    broadcasts_admin.bp,  # /admin/broadcasts/
    site_editor.bp,  # /admin/site: site.yaml, the author
    segments_admin.bp,  # /admin/segments/
    sessions_admin.bp,  # /admin/account, ending operators' sessions
    replies_admin.bp,  # /admin/replies: readers' replies
):
    bp.register_blueprint(area)

OPEN = frozenset({"admin.auth.login"})  # the only view a logged-out visitor may see


# -- access ------------------------------------------------------------------------------------

bp.add_app_template_global(access.may, "may")


bp.add_app_template_filter(problem_links.where, "where")
bp.add_app_template_global(problem_links.fix_url, "fix_url")


@bp.app_template_global("time_zones")
@cache
def time_zones() -> tuple[str, ...]:
    """The IANA time zones a picker offers: every Area/City zone and UTC."""
    return ("UTC", *sorted(z for z in zoneinfo.available_timezones() if "/" in z))


bp.after_request(access.record_change)


@bp.record_once
def _watch_flashes(state: BlueprintSetupState) -> None:
    """A view that flashes an error did not do what was asked: not for the audit log."""
    message_flashed.connect(access.note_failure, state.app)


@bp.after_request
def private(response: Response) -> Response:
    """Admin pages hold personal data and buttons: never cached, never framed elsewhere."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


@bp.before_request
def require_operator() -> ResponseReturnValue | None:
    if request.endpoint in OPEN:
        return None
    if any(
        isinstance(value, int) and not 0 <= value < MAX_ID
        for value in (request.view_args or {}).values()
    ):
        abort(404)  # no row has such an id; the database's integer would overflow
    operator = current_operator()
    if operator is None:
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("admin.auth.login", next=target))
    g.operator = operator
    g.operator_email = operator.email  # for the audit log, even once the account is gone
    return access.refuse_unless_allowed(operator)
