"""What readers see, as one blueprint with three nested: the sign-up form (signup), the
reader's consent from the links in every email (consent: confirm, unsubscribe, preferences),
and the other links in an email (links: downloads, tags, offers, tracked links). The pace
and engagement pages are blueprints of their own (drip.web.public.pace, .engagement).

Handlers stay thin: they read the request, call plain functions of drip.audience and
drip.dispatch, commit, and render. Two rules hold throughout: an answer never tells whether
an address is already subscribed, and a GET never unsubscribes (mail scanners open links)."""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    render_template,
)
from flask.typing import ResponseReturnValue

from drip.web.public import consent, email_links, signup

log = logging.getLogger(__name__)


bp = Blueprint("public", __name__)
for part in (signup.bp, consent.bp, email_links.bp):
    bp.register_blueprint(part)


@bp.errorhandler(400)
def bad_request(_error: Exception) -> ResponseReturnValue:
    """Mostly a form posted without its security token (a page left open very long, or a
    post from another site): say what to do, change nothing."""
    return render_template(
        "public/problem.html",
        title="That didn't go through",
        message="The form was missing something we need to accept it. "
        "Please go back, reload the page and try again.",
    ), 400


@bp.errorhandler(404)
def not_found(_error: Exception) -> ResponseReturnValue:
    return render_template(
        "public/problem.html", title="Page not found", message="There is nothing at this address."
    ), 404
