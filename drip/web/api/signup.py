"""`POST /api/subscriptions`: the JSON sign-up, for sites that build their own form.

CORS is granted only to the origins in DRIP_CORS_ORIGINS. CORS alone only stops a browser
from *reading* the answer, so a post whose Origin is not allowed is refused outright too.
Every refusal is the APIs' one error (drip.web.api.errors) with a stable code.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from drip.audience.signup import SignUp, SignUpRefused
from drip.audience.signup_queue import accept_sign_up
from drip.content.sequences import Sequence
from drip.web.api.errors import json_error
from drip.web.context import services
from drip.web.public.lookups import peer

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_BODY = 8 * 1024  # a sign-up is a few hundred bytes; refuse more before parsing any
TEXTS = ("email", "first_name", "timezone", "exam_date", "responsibilities")


class Refusal(Exception):
    """A sign-up refused before it reaches drip.audience.signup: what the API answers."""

    def __init__(self, code: str, message: str, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.code, self.status, self.field = code, status, field


@bp.errorhandler(Refusal)
def refusal(problem: Refusal) -> ResponseReturnValue:
    return json_error(problem.code, str(problem), problem.status, field=problem.field)


@bp.errorhandler(SignUpRefused)
def refused(problem: SignUpRefused) -> ResponseReturnValue:
    status = 429 if problem.throttled else 400
    return json_error(
        problem.code, str(problem), status, field=problem.field, suggestion=problem.suggestion
    )


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


def _body() -> dict[str, Any]:
    """The JSON object posted, small and with its Content-Length; else a Refusal."""
    if not request.is_json:
        raise Refusal(
            "unsupported_media_type", "send JSON with Content-Type: application/json", 415
        )
    if request.content_length is None or request.content_length > MAX_BODY:
        raise Refusal(
            "invalid_body",
            f"the body must be JSON of at most {MAX_BODY} bytes, with its Content-Length",
        )
    try:
        data = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):
        raise Refusal("invalid_body", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Refusal("invalid_body", "the body must be a JSON object")
    return data


def _sequence(data: dict[str, Any]) -> Sequence:
    slug = data.get("sequence")
    library = services().content.library()
    sequence = library.for_sign_up(slug) if isinstance(slug, str) else None
    if sequence is None:
        known = ", ".join(f'"{name}"' for name in sorted({*library.sequences, *library.held_forms}))
        raise Refusal(
            "unknown_sequence",
            f"unknown sequence: give the slug of a course, one of {known}",
            404,
            "sequence",
        )
    return sequence


def _form(data: dict[str, Any], sequence: Sequence) -> SignUp:
    """The sign-up the body describes, its fields of the right types; else a Refusal."""
    for name in TEXTS:
        if not isinstance(data.get(name, ""), str):
            raise Refusal(
                "invalid_field",
                "email, first_name, timezone, exam_date and responsibilities are strings",
                field=name,
            )
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise Refusal("invalid_field", "tags is a list of strings", field="tags")
    if data.get("consent") is not True:
        raise Refusal(
            "consent_required",
            "consent must be true: the reader agreed to the sequence's consent text",
            field="consent",
        )
    texts = {name: data.get(name, "") for name in TEXTS}
    return SignUp(
        email=texts["email"],
        first_name=texts["first_name"],
        timezone=texts["timezone"],
        consent=True,
        fields={name: texts[name] for name in sequence.signup_fields},
        tags=tuple(tags),
        email_checked=data.get("email_checked") is True,
    )


@bp.route("/subscriptions", methods=["POST", "OPTIONS"])
def subscriptions() -> ResponseReturnValue:
    """JSON {email, first_name?, sequence, timezone?, consent: true, exam_date?,
    responsibilities?, tags?, email_checked?} -> 202 {"status": "accepted"}, the same for
    a known address."""
    origin = request.headers.get("Origin")
    if origin and not _origin_allowed(origin):
        raise Refusal(
            "forbidden_origin", f"origin {origin} may not post here (DRIP_CORS_ORIGINS)", 403
        )
    if request.method == "OPTIONS":
        return Response(status=204)
    data = _body()
    sequence = _sequence(data)
    form = _form(data, sequence)
    svc = services()
    accept_sign_up(
        svc.engine,
        sequence,
        form,
        peer(f"api ({origin or 'no origin'})"[:200]),
        svc.clock(),
        svc.settings,
        svc.resolver,
    )
    return jsonify(status="accepted"), 202
