"""`POST /api/subscriptions`: the JSON sign-up, for sites that build their own form.

CORS is granted only to the origins in DRIP_CORS_ORIGINS. CORS alone only stops a browser
from *reading* the answer, so a post whose Origin is not allowed is refused outright too.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from drip.audience.signup import SignUp, SignUpRefused, accept_sign_up
from drip.web.context import db_session, services
from drip.web.public.lookups import peer

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_BODY = 8 * 1024  # a sign-up is a few hundred bytes; refuse more before parsing any


def _own_origin() -> str:
    parts = urlsplit(services().settings.base_url)
    return f"{parts.scheme}://{parts.netloc}"


def _origin_allowed(origin: str) -> bool:
    return origin.rstrip("/") in services().settings.cors_origins or origin == _own_origin()


@bp.after_request
def cors_headers(response: Response) -> Response:
    origin = request.headers.get("Origin")
    response.vary.add("Origin")
    if origin and _origin_allowed(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = "86400"
    return response


def _error(message: str, status: int, suggestion: str | None = None) -> ResponseReturnValue:
    if suggestion:  # "did you mean": the address the reader probably meant
        return jsonify(status="error", error=message, suggestion=suggestion), status
    return jsonify(status="error", error=message), status


@bp.route("/subscriptions", methods=["POST", "OPTIONS"])
def subscriptions() -> ResponseReturnValue:
    """JSON {email, first_name?, sequence, timezone?, consent: true, exam_date?,
    responsibilities?} -> 202 {"status": "accepted"}, the same for a known address."""
    origin = request.headers.get("Origin")
    if origin and not _origin_allowed(origin):
        return _error(f"origin {origin} may not post here (DRIP_CORS_ORIGINS)", 403)
    if request.method == "OPTIONS":
        return Response(status=204)
    if not request.is_json:
        return _error("send JSON with Content-Type: application/json", 415)
    if request.content_length is None or request.content_length > MAX_BODY:
        return _error(
            f"the body must be JSON of at most {MAX_BODY} bytes, with its Content-Length", 400
        )
    try:
        data = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):
        return _error("the body is not valid JSON", 400)
    if not isinstance(data, dict):
        return _error("the body must be a JSON object", 400)
    slug = data.get("sequence")
    library = services().content.library()
    sequence = library.for_sign_up(slug) if isinstance(slug, str) else None
    if sequence is None:
        known = ", ".join(f'"{name}"' for name in sorted({*library.sequences, *library.held_forms}))
        return _error(f"unknown sequence: give the slug of a course, one of {known}", 404)
    texts = {
        key: data.get(key, "")
        for key in ("email", "first_name", "timezone", "exam_date", "responsibilities")
    }
    if not all(isinstance(value, str) for value in texts.values()):
        return _error(
            "email, first_name, timezone, exam_date and responsibilities are strings", 400
        )
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return _error("tags is a list of strings", 400)
    if data.get("consent") is not True:
        return _error("consent must be true: the reader agreed to the sequence's consent text", 400)
    form = SignUp(
        email=texts["email"],
        first_name=texts["first_name"],
        timezone=texts["timezone"],
        consent=True,
        fields={name: texts[name] for name in sequence.signup_fields},
        tags=tuple(tags),
        email_checked=data.get("email_checked") is True,
    )
    try:
        svc = services()
        accept_sign_up(
            db_session(),
            sequence,
            form,
            peer(f"api ({origin or 'no origin'})"[:200]),
            svc.clock(),
            svc.settings,
            svc.resolver,
        )
    except SignUpRefused as refused:
        return _error(str(refused), 429 if refused.throttled else 400, refused.suggestion)
    return jsonify(status="accepted"), 202
