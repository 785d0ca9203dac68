"""The REST API's tags and timeline of a reader: add tags, remove one, read the events."""

from __future__ import annotations

from flask import Blueprint, g, jsonify
from flask.typing import ResponseReturnValue

from drip.audience.readers import ReaderError, get_reader, timeline
from drip.audience.tags import add_tags, remove_tag, tags_of
from drip.web.api.parsing import body, page
from drip.web.context import db_session, services

bp = Blueprint("tags", __name__)


@bp.post("/readers/<int:reader_id>/tags")
def post_tags(reader_id: int) -> ResponseReturnValue:
    data = body()
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
    data, cursor = timeline(session, get_reader(session, reader_id), *page())
    return jsonify(data=data, next_cursor=str(cursor) if cursor else None)
