"""What the REST API reads from a request: its JSON body, a string field of it, and the
cursor and size of a page; anything else is refused with a ReaderError (a 400)."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from drip.audience.readers import MAX_PAGE, ReaderError
from drip.store.queries import MAX_ID

MAX_BODY = 16 * 1024


def body() -> dict[str, Any]:
    if (request.content_length or 0) > MAX_BODY:
        raise ReaderError(f"the body must be at most {MAX_BODY} bytes")
    try:
        data = json.loads(request.get_data(cache=False) or b"{}")
    except (ValueError, RecursionError):
        raise ReaderError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ReaderError("the body must be a JSON object")
    return data


def string(data: dict[str, Any], name: str, default: str = "") -> str:
    value = data.get(name, default)
    if not isinstance(value, str):
        raise ReaderError(f"{name} is a string", f"invalid_{name}")
    return value


def page() -> tuple[int, int]:
    try:
        after = int(request.args.get("cursor", "0") or 0)
        limit = min(int(request.args.get("limit", "50")), MAX_PAGE)
    except ValueError:
        raise ReaderError("cursor and limit are whole numbers") from None
    if not 0 <= after <= MAX_ID or limit < 1:
        raise ReaderError(f"cursor is from 0 to {MAX_ID} and limit at least 1")
    return after, limit
