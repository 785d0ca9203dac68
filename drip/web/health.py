"""`GET /healthz`: is the database reachable, when did a dispatch pass last run, and may
drip send (the production guardrails).

It needs no login, so it says what is wrong without the database's own error text (which
can name hosts, users and tables); that goes to the log.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from drip import guardrails
from drip.bounces import sending_paused
from drip.db import DatabaseProblem
from drip.models import WorkerHeartbeat
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
    body["sending_paused"] = sending_paused(db_session())
    body["last_pass_at"] = last.isoformat() if last else None
    body["last_pass_age_seconds"] = round((now - last).total_seconds()) if last else None
    return jsonify(body), 200
