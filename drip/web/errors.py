"""Styled 404 and 500 pages: the admin's look under /admin, the readers' look elsewhere,
JSON under /api/ (the REST API's own shape under /api/v1/). A 500 page says nothing of the
error itself; the log has it."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError, NotFound

from drip.web import api_v1

log = logging.getLogger(__name__)

WORDS = {
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


def _page(code: int) -> ResponseReturnValue:
    title, message = WORDS[code]
    if request.path.startswith("/api/v1/"):  # the REST API's one error shape
        return api_v1.error(
            message if code == 500 else "no such endpoint: see /api/v1/openapi.json",
            "server_error" if code == 500 else "not_found",
            code,
        )
    if request.path.startswith("/api/"):
        return jsonify(status="error", error=title.lower()), code
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


def init_app(app: Flask) -> None:
    app.register_error_handler(NotFound, not_found)
    app.register_error_handler(InternalServerError, server_error)
