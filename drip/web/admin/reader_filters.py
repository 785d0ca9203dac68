"""The readers list's filters and page, read from the request: the same for the list, its
bulk actions and its export, and the delivery log and audit log's pages."""

from __future__ import annotations

from typing import Any

from flask import flash, request

from drip.audience import segments
from drip.audience.segments import SegmentError
from drip.store.filters import Filters
from drip.store.queries import Cursor
from drip.web.context import db_session, services

MAX_ID = 2**31  # ids are 32-bit integers on PostgreSQL


def cursor() -> Cursor:
    """The page asked for: ?after=ID (older), ?before=ID (newer), ?page=last, or the first."""

    def number(name: str) -> int | None:
        value = request.args.get(name, "")
        return min(int(value), MAX_ID) if value.isascii() and value.isdigit() else None

    return Cursor(
        after=number("after"), before=number("before"), last=request.args.get("page") == "last"
    )


def filters() -> Filters:
    """The list's filters, from the query string (a list) or the form (a bulk action)."""
    values = request.values
    return Filters(
        status=values.get("status", ""),
        sequence=values.get("sequence", ""),
        address=values.get("q", "").strip(),
        tag=values.get("tag", "").strip().lower(),
        segment=values.get("segment", "").strip().lower(),
        engagement=values.get("engagement", "").strip().lower(),
    )


def with_segment(asked: Filters) -> Filters | None:
    """The filters with their segment's conditions, as of now; None (and the reason
    flashed) when there is no such segment."""
    try:
        return segments.narrowed(db_session(), asked, services().clock())
    except SegmentError as error:
        flash(f"{error}.", "error")
        return None


def filter_args(chosen: Filters) -> dict[str, Any]:
    """The filters as the readers list's query string, empty ones left out."""
    return {
        name: value
        for name, value in (
            ("q", chosen.address),
            ("sequence", chosen.sequence),
            ("status", chosen.status),
            ("tag", chosen.tag),
            ("segment", chosen.segment),
            ("engagement", chosen.engagement),
        )
        if value
    }
