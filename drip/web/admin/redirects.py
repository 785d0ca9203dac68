"""Where an admin page sends the operator next: only ever a path inside /admin on this site,
never another host (an open redirect) and never a header split by CR/LF."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request, url_for


def safe_next(value: str | None) -> str:
    """`value` if it is a path inside /admin; else the dashboard."""
    fallback = url_for("admin.dashboard.index")
    if (
        not value
        or "\\" in value
        or value.startswith("//")
        or not value.isprintable()
        or any(char.isspace() for char in value)
    ):
        return fallback  # CR/LF would split the Location header
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin"):
        return fallback
    return value


def back(fallback: str) -> str:
    """The page a form came from (its `back` field), or `fallback`."""
    return safe_next(request.form.get("back")) if request.form.get("back") else fallback
