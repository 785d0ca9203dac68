"""The REST API, `/api/v1/`, for the blog's other tools (WordPress, Zapier, n8n): readers,
their courses, tags and timeline, and broadcasts, with `Authorization: Bearer <key>`
(`drip api-key create`). Errors have one shape, `{"error": {"code": ..., "message": ...}}`;
lists are paged by cursor. The handlers translate; drip/audience/readers.py and
drip/dispatch/broadcasts.py do the work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from drip.audience.readers import (
    MAX_PAGE,
    ReaderError,
    change_enrollment,
    create_reader,
    enroll,
    enrollment_json,
    erase_reader,
    get_reader,
    page_of_readers,
    reader_json,
    timeline,
    update_reader,
)
from drip.audience.tags import TagError, add_tags, remove_tag, tags_of
from drip.content.names import broadcast_name as name_for
from drip.dispatch.broadcast_report import report
from drip.dispatch.broadcasts import (
    BroadcastError,
    BroadcastFile,
    audience_count,
    broadcast_from,
    cancel,
    create_draft,
    edit_draft,
    page_of_broadcasts,
    parse_when,
    schedule_draft,
)
from drip.integrations.api_keys import authenticate
from drip.store.models import Broadcast, BroadcastStatus
from drip.store.queries import MAX_ID
from drip.web.context import db_session, services

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
STATUS = {"not_found": 404, "unknown_sequence": 404, "exists": 409, "conflict": 409}  # else 400
MAX_BODY = 16 * 1024


def error(message: str, code: str, status: int) -> ResponseReturnValue:
    return jsonify(error={"code": code, "message": message}), status


@bp.errorhandler(ReaderError)
def reader_error(problem: ReaderError) -> ResponseReturnValue:
    return error(str(problem), problem.code, STATUS.get(problem.code, 400))


@bp.errorhandler(TagError)
def tag_error(problem: TagError) -> ResponseReturnValue:
    return error(str(problem), "invalid_tag", 400)


@bp.errorhandler(404)
def not_found(_problem: Exception) -> ResponseReturnValue:
    return error("no such endpoint: see /api/v1/openapi.json", "not_found", 404)


@bp.errorhandler(405)
def not_allowed(_problem: Exception) -> ResponseReturnValue:
    return error("this endpoint does not take that method", "method_not_allowed", 405)


@bp.before_request
def require_key() -> ResponseReturnValue | None:
    if request.endpoint == "api_v1.openapi":
        return None
    header = request.headers.get("Authorization", "")
    key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    session = db_session()
    caller = authenticate(session, key, services().clock()) if key else None
    if caller is None:
        return error("a valid API key is needed: Authorization: Bearer <key>", "unauthorized", 401)
    session.commit()
    if request.method not in ("GET", "HEAD") and not caller.can_write:
        return error(f"the key {caller.name!r} may only read", "forbidden", 403)
    g.caller = caller
    return None


def _body() -> dict[str, Any]:
    if (request.content_length or 0) > MAX_BODY:
        raise ReaderError(f"the body must be at most {MAX_BODY} bytes")
    try:
        data = json.loads(request.get_data(cache=False) or b"{}")
    except (ValueError, RecursionError):
        raise ReaderError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ReaderError("the body must be a JSON object")
    return data


def _string(data: dict[str, Any], name: str, default: str = "") -> str:
    value = data.get(name, default)
    if not isinstance(value, str):
        raise ReaderError(f"{name} is a string", f"invalid_{name}")
    return value


def _page() -> tuple[int, int]:
    try:
        after = int(request.args.get("cursor", "0") or 0)
        limit = min(int(request.args.get("limit", "50")), MAX_PAGE)
    except ValueError:
        raise ReaderError("cursor and limit are whole numbers") from None
    if not 0 <= after <= MAX_ID or limit < 1:
        raise ReaderError(f"cursor is from 0 to {MAX_ID} and limit at least 1")
    return after, limit


@bp.get("/readers")
def list_readers() -> ResponseReturnValue:
    session = db_session()
    rows, cursor = page_of_readers(session, *_page(), request.args.get("engagement", ""))
    return jsonify(
        data=[reader_json(session, r) for r in rows], next_cursor=str(cursor) if cursor else None
    )


@bp.post("/readers")
def post_reader() -> ResponseReturnValue:
    data = _body()
    session = db_session()
    subscriber = create_reader(
        session,
        _string(data, "email"),
        services().clock(),
        first_name=_string(data, "first_name"),
        timezone=_string(data, "timezone") or None,
        consent_source=_string(data, "consent_source"),
        caller=g.caller.name,
    )
    session.commit()
    return jsonify(reader_json(session, subscriber)), 201


@bp.get("/readers/<int:reader_id>")
def get_one(reader_id: int) -> ResponseReturnValue:
    session = db_session()
    return jsonify(reader_json(session, get_reader(session, reader_id)))


@bp.patch("/readers/<int:reader_id>")
def patch_reader(reader_id: int) -> ResponseReturnValue:
    session = db_session()
    subscriber = get_reader(session, reader_id)
    update_reader(subscriber, _body())
    session.commit()
    return jsonify(reader_json(session, subscriber))


@bp.delete("/readers/<int:reader_id>")
def delete_reader(reader_id: int) -> ResponseReturnValue:
    session = db_session()
    erase_reader(session, get_reader(session, reader_id), services().settings)
    return "", 204


@bp.post("/readers/<int:reader_id>/enrollments")
def post_enrollment(reader_id: int) -> ResponseReturnValue:
    data = _body()
    session = db_session()
    subscriber = get_reader(session, reader_id)
    confirmed = data.get("confirmed", False)
    if not isinstance(confirmed, bool):
        raise ReaderError("confirmed is true or false", "invalid_confirmed")
    enrollment = enroll(
        session,
        services().content.library(),
        subscriber,
        _string(data, "sequence"),
        services().clock(),
        confirmed=confirmed,
        caller=g.caller.name,
    )
    session.commit()
    return jsonify(enrollment_json(enrollment)), 201


@bp.post("/readers/<int:reader_id>/enrollments/<slug>/<any(pause, resume, leave):action>")
def enrollment_action(reader_id: int, slug: str, action: str) -> ResponseReturnValue:
    session = db_session()
    enrollment = change_enrollment(
        session,
        services().content.library(),
        get_reader(session, reader_id),
        slug,
        action,
        services().clock(),
        g.caller.name,
    )
    session.commit()
    return jsonify(enrollment_json(enrollment))


@bp.post("/readers/<int:reader_id>/tags")
def post_tags(reader_id: int) -> ResponseReturnValue:
    data = _body()
    tags = data.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ReaderError('tags is a list of strings, e.g. {"tags": ["has-dates"]}', "invalid_tags")
    session = db_session()
    subscriber = get_reader(session, reader_id)
    add_tags(
        session,
        subscriber,
        tags,
        services().clock(),
        f"api ({g.caller.name})",
        services().content.library(),
    )
    session.commit()
    return jsonify(tags=tags_of(session, subscriber.id))


@bp.delete("/readers/<int:reader_id>/tags/<tag>")
def delete_tag(reader_id: int, tag: str) -> ResponseReturnValue:
    session = db_session()
    subscriber = get_reader(session, reader_id)
    remove_tag(session, subscriber, tag, services().clock(), f"api ({g.caller.name})")
    session.commit()
    return jsonify(tags=tags_of(session, subscriber.id))


@bp.get("/readers/<int:reader_id>/events")
def events(reader_id: int) -> ResponseReturnValue:
    session = db_session()
    data, cursor = timeline(session, get_reader(session, reader_id), *_page())
    return jsonify(data=data, next_cursor=str(cursor) if cursor else None)


@bp.errorhandler(BroadcastError)
def broadcast_error(problem: BroadcastError) -> ResponseReturnValue:
    return error("; ".join(p.message for p in problem.problems), "invalid_broadcast", 400)


def _broadcast(session: Session, broadcast_id: int) -> Broadcast:
    found = session.get(Broadcast, broadcast_id) if 0 < broadcast_id < 2**31 else None
    if found is None:
        raise ReaderError(f"no broadcast {broadcast_id}", "not_found")
    return found


@bp.get("/broadcasts")
def list_broadcasts() -> ResponseReturnValue:
    session = db_session()
    library = services().content.library()
    rows, cursor = page_of_broadcasts(session, *_page())
    return jsonify(
        data=[report(session, b, library) for b in rows],
        next_cursor=str(cursor) if cursor else None,
    )


def _spec(data: dict[str, Any], draft: Broadcast | None = None) -> BroadcastFile:
    """The broadcast a POST (a new one) or a PATCH (over `draft`: a field left out keeps
    the draft's, an `audience` given replaces its audience) describes, checked by the same
    function as a file and the admin's form; an unknown segment is refused too."""
    audience = data.get("audience", draft.audience if draft else {})
    if not isinstance(audience, dict):
        raise ReaderError(
            'audience is an object, e.g. {"to": ["tiny"], "segment": "exam-soon"}',
            "invalid_audience",
        )
    subject = _string(data, "subject", draft.subject if draft else "")
    meta = {
        "subject": subject,
        "preheader": _string(data, "preheader", draft.preheader if draft else ""),
        **audience,
    }
    svc = services()
    spec = broadcast_from(
        meta,
        _string(data, "body", draft.body if draft else ""),
        svc.content.library(),
        path=Path("body"),
        name=_string(data, "name", draft.name if draft else "") or name_for(subject),
    )
    audience_count(db_session(), spec, svc.clock())  # an unknown segment: 400
    return spec


def _draft_json(broadcast: Broadcast) -> dict[str, Any]:
    """The draft's progress and how many readers it would reach now."""
    svc = services()
    session = db_session()
    total, _first = audience_count(session, broadcast.audience, svc.clock())
    return {**report(session, broadcast, svc.content.library()), "audience_now": total}


@bp.post("/broadcasts")
def post_broadcast() -> ResponseReturnValue:
    """A draft: {"subject", "preheader"?, "body", "audience": {"to"?, "readers"?, "tags"?,
    "segment"?}, "name"?}; scheduled by POST .../schedule."""
    spec = _spec(_body())
    session = db_session()
    broadcast = create_draft(session, spec, services().clock(), f"api ({g.caller.name})")
    session.commit()
    return jsonify(_draft_json(broadcast)), 201


@bp.patch("/broadcasts/<int:broadcast_id>")
def patch_broadcast(broadcast_id: int) -> ResponseReturnValue:
    """Edit a draft with the fields a POST takes (those left out are kept); 409 once it is
    scheduled, sent or cancelled."""
    session = db_session()
    broadcast = _broadcast(session, broadcast_id)
    if broadcast.status != BroadcastStatus.DRAFT:
        raise ReaderError(f"the broadcast is {broadcast.status}, not a draft", "conflict")
    spec = _spec(_body(), broadcast)
    try:
        edited = edit_draft(session, broadcast_id, spec)
    except BroadcastError as problem:  # scheduled meanwhile
        session.rollback()
        raise ReaderError(problem.problems[0].message, "conflict") from None
    session.commit()
    return jsonify(_draft_json(edited))


@bp.get("/broadcasts/<int:broadcast_id>")
def get_broadcast(broadcast_id: int) -> ResponseReturnValue:
    session = db_session()
    return jsonify(report(session, _broadcast(session, broadcast_id), services().content.library()))


@bp.post("/broadcasts/<int:broadcast_id>/schedule")
def schedule_broadcast(broadcast_id: int) -> ResponseReturnValue:
    """{"at"?: ISO-8601 (without an offset: UTC; absent: now)} -> the broadcast, scheduled."""
    data = _body()
    svc = services()
    session = db_session()
    broadcast = _broadcast(session, broadcast_id)
    if broadcast.status != BroadcastStatus.DRAFT:
        raise ReaderError(f"the broadcast is {broadcast.status}, not a draft", "conflict")
    at = parse_when(_string(data, "at"), "UTC", svc.clock())
    schedule_draft(session, svc.content.library(), broadcast, at, svc.clock())
    return jsonify(report(session, broadcast, svc.content.library()))


@bp.post("/broadcasts/<int:broadcast_id>/cancel")
def cancel_broadcast(broadcast_id: int) -> ResponseReturnValue:
    session = db_session()
    broadcast = _broadcast(session, broadcast_id)
    if broadcast.status not in (BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED):
        raise ReaderError(f"the broadcast is {broadcast.status}", "conflict")
    cancel(session, broadcast_id, services().clock())
    session.refresh(broadcast)
    return jsonify(report(session, broadcast, services().content.library()))


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(OPENAPI)


def _op(
    summary: str, status: str = "200", body: bool = False, params: tuple[str, ...] = ()
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {
            status: {"description": "OK"},
            "default": {
                "description": "an error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
        "parameters": [
            {
                "name": p,
                "in": "path",
                "required": True,
                "schema": {"type": "string" if p in ("slug", "tag", "action") else "integer"},
            }
            for p in params
        ],
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return operation


PAGED = [
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": MAX_PAGE}},
]
ENGAGEMENT = {"name": "engagement", "in": "query", "schema": {"enum": ["engaged", "quiet", "gone"]}}
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "drip",
        "version": "1",
        "description": "Readers, their courses, tags and timeline; broadcasts.",
    },
    "components": {
        "securitySchemes": {"key": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            }
        },
    },
    "security": [{"key": []}],
    "paths": {
        "/api/v1/readers": {
            "get": {**_op("List readers, oldest first"), "parameters": [*PAGED, ENGAGEMENT]},
            "post": _op(
                "Create a reader (email, first_name, timezone, consent_source)", "201", body=True
            ),
        },
        "/api/v1/readers/{reader_id}": {
            "get": _op("A reader, their courses and tags", params=("reader_id",)),
            "patch": _op("Change first_name or timezone", body=True, params=("reader_id",)),
            "delete": _op(
                "Erase the reader and everything about them", "204", params=("reader_id",)
            ),
        },
        "/api/v1/readers/{reader_id}/enrollments": {
            "post": _op(
                'Start a course ({"sequence": slug, "confirmed"?: bool})',
                "201",
                body=True,
                params=("reader_id",),
            )
        },
        "/api/v1/readers/{reader_id}/enrollments/{slug}/{action}": {
            "post": _op("pause, resume or leave a course", params=("reader_id", "slug", "action"))
        },
        "/api/v1/readers/{reader_id}/tags": {
            "post": _op('Add tags ({"tags": [...]})', body=True, params=("reader_id",))
        },
        "/api/v1/readers/{reader_id}/tags/{tag}": {
            "delete": _op("Remove a tag", params=("reader_id", "tag"))
        },
        "/api/v1/readers/{reader_id}/events": {
            "get": {
                **_op("The reader's timeline, oldest first", params=("reader_id",)),
                "parameters": [*_op("", params=("reader_id",))["parameters"], *PAGED],
            }
        },
        "/api/v1/broadcasts": {
            "get": {
                **_op("List broadcasts with their progress, oldest first"),
                "parameters": PAGED,
            },
            "post": _op(
                "Write a draft broadcast ({subject, preheader?, body (Markdown), audience: "
                "{to?, readers?, tags?, segment?}, name?})",
                "201",
                body=True,
            ),
        },
        "/api/v1/broadcasts/{broadcast_id}": {
            "get": _op(
                "A broadcast and its progress (queued, sent, failed, skipped, bounced, clicked)",
                params=("broadcast_id",),
            ),
            "patch": _op(
                "Edit a draft (the fields of a new one; those left out are kept; 409 unless "
                "it is a draft)",
                body=True,
                params=("broadcast_id",),
            ),
        },
        "/api/v1/broadcasts/{broadcast_id}/schedule": {
            "post": _op(
                'Schedule a draft ({"at"?: ISO-8601}; absent: now)',
                body=True,
                params=("broadcast_id",),
            )
        },
        "/api/v1/broadcasts/{broadcast_id}/cancel": {
            "post": _op(
                "Cancel: readers whose turn has not come do not get it", params=("broadcast_id",)
            )
        },
        "/api/v1/openapi.json": {"get": {**_op("This document"), "security": []}},
    },
}
