"""The REST API's readers and their courses: list, create, read, change and erase a reader,
start a course and pause, resume or leave it, and the replies they wrote. The handlers
translate; drip/audience/readers.py does the work."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from drip.audience.exports import replies_of
from drip.audience.readers import (
    ReaderError,
    change_enrollment,
    create_reader,
    enroll,
    enrollment_json,
    erase_reader,
    get_reader,
    page_of_readers,
    reader_json,
    update_reader,
)
from drip.web.api.parsing import body, page, string
from drip.web.context import db_session, services

bp = Blueprint("readers", __name__)


@bp.get("/readers")
def list_readers() -> ResponseReturnValue:
    session = db_session()
    rows, cursor = page_of_readers(session, *page(), request.args.get("engagement", ""))
    return jsonify(
        data=[reader_json(session, r) for r in rows], next_cursor=str(cursor) if cursor else None
    )


@bp.post("/readers")
def post_reader() -> ResponseReturnValue:
    data = body()
    session = db_session()
    subscriber = create_reader(
        session,
        string(data, "email"),
        services().clock(),
        first_name=string(data, "first_name"),
        timezone=string(data, "timezone") or None,
        consent_source=string(data, "consent_source"),
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
    update_reader(subscriber, body())
    session.commit()
    return jsonify(reader_json(session, subscriber))


@bp.delete("/readers/<int:reader_id>")
def delete_reader(reader_id: int) -> ResponseReturnValue:
    session = db_session()
    erase_reader(session, get_reader(session, reader_id), services().settings)
    return "", 204


@bp.get("/readers/<int:reader_id>/replies")
def replies(reader_id: int) -> ResponseReturnValue:
    """The replies the reader wrote, newest first, each with the lesson it answers."""
    session = db_session()
    return jsonify(data=replies_of(session, get_reader(session, reader_id)))


@bp.post("/readers/<int:reader_id>/enrollments")
def post_enrollment(reader_id: int) -> ResponseReturnValue:
    data = body()
    session = db_session()
    subscriber = get_reader(session, reader_id)
    confirmed = data.get("confirmed", False)
    if not isinstance(confirmed, bool):
        raise ReaderError("confirmed is true or false", "invalid_confirmed")
    enrollment = enroll(
        session,
        services().content.library(),
        subscriber,
        string(data, "sequence"),
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
