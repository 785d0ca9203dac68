"""The REST API's broadcasts: list them with their progress, write and edit a draft,
schedule or cancel it. The handlers translate; drip/dispatch/broadcasts.py does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, g, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from drip.audience.readers import ReaderError
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
from drip.store.models import Broadcast, BroadcastStatus
from drip.web.api.parsing import body, page, string
from drip.web.context import db_session, services

bp = Blueprint("broadcasts", __name__)


def _broadcast(session: Session, broadcast_id: int) -> Broadcast:
    found = session.get(Broadcast, broadcast_id) if 0 < broadcast_id < 2**31 else None
    if found is None:
        raise ReaderError(f"no broadcast {broadcast_id}", "not_found")
    return found


@bp.get("/broadcasts")
def list_broadcasts() -> ResponseReturnValue:
    session = db_session()
    library = services().content.library()
    rows, cursor = page_of_broadcasts(session, *page())
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
    subject = string(data, "subject", draft.subject if draft else "")
    meta = {
        "subject": subject,
        "preheader": string(data, "preheader", draft.preheader if draft else ""),
        **audience,
    }
    svc = services()
    spec = broadcast_from(
        meta,
        string(data, "body", draft.body if draft else ""),
        svc.content.library(),
        path=Path("body"),
        name=string(data, "name", draft.name if draft else "") or name_for(subject),
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
    spec = _spec(body())
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
    spec = _spec(body(), broadcast)
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
    data = body()
    svc = services()
    session = db_session()
    broadcast = _broadcast(session, broadcast_id)
    if broadcast.status != BroadcastStatus.DRAFT:
        raise ReaderError(f"the broadcast is {broadcast.status}, not a draft", "conflict")
    at = parse_when(string(data, "at"), "UTC", svc.clock())
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
