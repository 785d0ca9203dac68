"""`GET /healthz`: is the database reachable, and when did a dispatch pass last run."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from drip.bounces import sending_paused
from drip.models import WorkerHeartbeat
from drip.web.context import db_session, services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    now = services().clock()
    body: dict[str, Any] = {"now": now.isoformat()}
    try:
        last = db_session().scalar(select(func.max(WorkerHeartbeat.last_pass_at)))
    except SQLAlchemyError as error:
        body.update(database="unreachable", error=str(error.__cause__ or error).splitlines()[0])
        return jsonify(body), 503
    body["database"] = "ok"
    body["sending_paused"] = sending_paused(db_session())
    body["last_pass_at"] = last.isoformat() if last else None
    body["last_pass_age_seconds"] = round((now - last).total_seconds()) if last else None
    return jsonify(body), 200
