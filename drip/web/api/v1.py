"""The REST API, `/api/v1/`, for the blog's other tools (WordPress, Zapier, n8n): readers,
their courses, tags, timeline and replies, and broadcasts, with `Authorization: Bearer <key>`
(`drip api-key create`). This blueprint checks the key and turns domain errors into the one
JSON error shape (drip.web.api.errors); the routes live in the blueprints nested in it
(readers, tags, broadcasts); lists are paged by cursor.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from drip.audience.readers import ReaderError
from drip.audience.tags import TagError
from drip.dispatch.broadcasts import BroadcastError
from drip.integrations.api_keys import authenticate
from drip.web.api import broadcasts, readers, tags
from drip.web.api.errors import json_error
from drip.web.api.openapi import OPENAPI
from drip.web.context import db_session, services

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
NESTED = (readers.bp, tags.bp, broadcasts.bp)  # each exempt from CSRF too (drip.app)
for nested in NESTED:
    bp.register_blueprint(nested)
STATUS = {"not_found": 404, "unknown_sequence": 404, "exists": 409, "conflict": 409}  # else 400


@bp.errorhandler(ReaderError)
def reader_error(problem: ReaderError) -> ResponseReturnValue:
    return json_error(problem.code, str(problem), STATUS.get(problem.code, 400))


@bp.errorhandler(TagError)
def tag_error(problem: TagError) -> ResponseReturnValue:
    return json_error("invalid_tag", str(problem), 400)


@bp.errorhandler(BroadcastError)
def broadcast_error(problem: BroadcastError) -> ResponseReturnValue:
    return json_error("invalid_broadcast", "; ".join(p.message for p in problem.problems), 400)


@bp.errorhandler(404)
def not_found(_problem: Exception) -> ResponseReturnValue:
    return json_error("not_found", "no such endpoint: see /api/v1/openapi.json", 404)


@bp.errorhandler(405)
def not_allowed(_problem: Exception) -> ResponseReturnValue:
    return json_error("method_not_allowed", "this endpoint does not take that method", 405)


@bp.before_request
def require_key() -> ResponseReturnValue | None:
    if request.endpoint == "api_v1.openapi":
        return None
    header = request.headers.get("Authorization", "")
    key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    session = db_session()
    caller = authenticate(session, key, services().clock()) if key else None
    if caller is None:
        return json_error(
            "unauthorized", "a valid API key is needed: Authorization: Bearer <key>", 401
        )
    session.commit()
    if request.method not in ("GET", "HEAD") and not caller.can_write:
        return json_error("forbidden", f"the key {caller.name!r} may only read", 403)
    g.caller = caller
    return None


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(OPENAPI)
