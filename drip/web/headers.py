"""Security headers on every response, public and admin, from one after_request.

- Content-Security-Policy: scripts only from our own static files (no inline script, so
  an injected `<script>` would not run); styles may be inline, because the email shown in
  the admin's sandboxed preview frame (which inherits this policy) is styled inline, as
  every email is; images also from https (a lesson's own pictures in that preview).
  `frame-ancestors 'none'` and `X-Frame-Options: DENY`: no page is framed by another
  site (a framed unsubscribe button invites clickjacking). The embedded sign-up form is
  HTML pasted into the blog, not a frame, so nothing needs an exception.
- Referrer-Policy `no-referrer`: links in email carry tokens in their path.
- Cache-Control `no-store` on the pages a token opens, and on the admin: neither a shared
  cache nor the browser's history should keep a reader's address.
"""

from __future__ import annotations

from flask import Flask, Response, request

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PRIVATE_PREFIXES = (  # the pages a token opens, and the admin
    "/confirm/",
    "/unsubscribe/",
    "/preferences/",
    "/magnet/",
    "/l/",
    "/pace/",
    "/admin",
)


def security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith(PRIVATE_PREFIXES) and "no-store" not in headers.get(
        "Cache-Control", ""
    ):
        headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.after_request(security_headers)
