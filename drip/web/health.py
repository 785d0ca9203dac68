"""`GET /healthz`: is the database reachable, when did a dispatch pass last run, and may
drip send (the production guardrails).

It needs no login, so it says what is wrong without the database's own error text (which
can name hosts, users and tables); that goes to the log.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from drip.core.clock import Clock
from drip.core.skew import SKEW_LIMIT, database_skew, describe
from drip.deliverability import guardrails
from drip.deliverability.sending_pause import sending_paused
from drip.store.db import DatabaseProblem
from drip.store.models import WorkerHeartbeat
from drip.web.context import db_session, services

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    svc = services()
    now = svc.clock()
    library = svc.content.library()
    problems = guardrails.problems(svc.settings, library)
    body: dict[str, Any] = {"now": now.isoformat()}
    if not svc.settings.smtp_url:
        body["sending"] = "outbox"
    elif not problems:
        body["sending"] = "ok"
    else:
        body["sending"] = "unsafe" if svc.settings.allow_unsafe_sending else "refused"
    body["problems"] = problems
    try:
        last = db_session().scalar(select(func.max(WorkerHeartbeat.last_pass_at)))
    except (SQLAlchemyError, DatabaseProblem):  # down, or a SQLite file gone
        log.exception("/healthz: database unreachable")
        body["database"] = "unreachable"
        return jsonify(body), 503
    body["database"] = "ok"
    body.update(clock_report(svc.clock, last))
    body["sending_paused"] = sending_paused(db_session())
    body["last_pass_at"] = last.isoformat() if last else None
    body["last_pass_age_seconds"] = round((now - last).total_seconds()) if last else None
    return jsonify(body), 200


def clock_report(clock: Clock, last_pass: datetime | None) -> dict[str, Any]:
    """This server's clock against the database's, and a worker's last pass stamped ahead
    of the database's clock (a worker whose clock runs fast): said in plain words."""
    skew = database_skew(db_session().connection(), clock)
    if skew is None:
        return {"clock_skew_seconds": None, "clock_problems": []}
    problems = [describe(skew, "this server's")] if abs(skew) > SKEW_LIMIT else []
    ahead = (last_pass - (clock() - skew)) if last_pass else None
    if ahead is not None and ahead > SKEW_LIMIT:
        problems.append(describe(ahead, "a worker's (its last pass is stamped in the future)"))
    return {"clock_skew_seconds": round(skew.total_seconds(), 1), "clock_problems": problems}
