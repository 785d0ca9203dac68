"""Styled 404 and 500 pages: the admin's look under /admin, the readers' look elsewhere,
the APIs' one JSON error under /api/. A 500 page says nothing of the
error itself; the log has it."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError, NotFound

from drip.web.api.errors import json_error

log = logging.getLogger(__name__)

WORDS = {
    400: (
        "Bad request",
        "This request held a character drip does not accept (a NUL byte). Nothing was "
        "changed; remove it and try again.",
    ),
    404: (
        "Page not found",
        "There is no page at this address. It may have moved, or the link may be incomplete.",
    ),
    500: (
        "Something went wrong",
        "drip could not finish this request. Nothing you sent was "
        "lost; please try again in a minute.",
    ),
}


API = {  # code and message of the APIs' one error shape (drip.web.api.errors)
    400: ("bad_request", WORDS[400][1]),
    404: ("not_found", "no such endpoint"),
    500: ("server_error", WORDS[500][1]),
}


def _page(code: int) -> ResponseReturnValue:
    title, message = WORDS[code]
    if request.path.startswith("/api/"):  # both APIs' one error shape
        name, text = API[code]
        if code == 404 and request.path.startswith("/api/v1/"):
            text += ": see /api/v1/openapi.json"
        return json_error(name, text, code)
    if request.path.startswith("/webhooks/"):  # the providers' shape (drip.web.api.webhooks)
        return jsonify(error=message), code
    template = "admin/error.html" if request.path.startswith("/admin") else "public/error.html"
    try:
        return render_template(template, code=code, title=title, message=message), code
    except Exception:  # the page itself failed (e.g. the database is down): plain text
        log.exception("the %s page could not be rendered", code)
        return f"{title}\n", code, {"Content-Type": "text/plain; charset=utf-8"}


def not_found(_error: HTTPException) -> ResponseReturnValue:
    return _page(404)


def server_error(_error: HTTPException) -> ResponseReturnValue:
    return _page(500)


def refuse_nul_bytes() -> ResponseReturnValue | None:
    """400 for a NUL byte in the path, the query, a form field or a JSON or text body:
    PostgreSQL cannot store one in text (it would fail as a 500, even at the login), and no
    honest request holds one. File uploads are the exception: their content is bytes."""
    if "\x00" in request.path or _has_nul(request.query_string, escaped=b"%00"):
        return _page(400)
    if request.mimetype == "multipart/form-data":
        fields = request.form
        if any("\x00" in key or "\x00" in value for key, value in fields.items(multi=True)):
            return _page(400)
        return None
    escaped = b"%00" if request.mimetype == "application/x-www-form-urlencoded" else b"\\u0000"
    if _has_nul(request.get_data(cache=True), escaped=escaped):  # cached: the view reads it
        return _page(400)
    return None


def _has_nul(data: bytes, *, escaped: bytes) -> bool:
    return b"\x00" in data or escaped in data.lower()


def init_app(app: Flask) -> None:
    app.before_request(refuse_nul_bytes)
    app.register_error_handler(NotFound, not_found)
    app.register_error_handler(InternalServerError, server_error)
