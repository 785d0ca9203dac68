"""The one JSON error of drip's APIs, the sign-up API's and the REST API's alike:
`{"error": {"code": "...", "message": "...", "field"?: "...", "suggestion"?: "..."}}`,
the code stable for a program to branch on, the message in words for a person."""

from __future__ import annotations

from flask import jsonify
from flask.typing import ResponseReturnValue


def json_error(code: str, message: str, status: int, **extra: str | None) -> ResponseReturnValue:
    """The error answer; `extra` (e.g. `field`, `suggestion`) joins the error when given."""
    error = {"code": code, "message": message}
    error.update({name: value for name, value in extra.items() if value})
    return jsonify(error=error), status
