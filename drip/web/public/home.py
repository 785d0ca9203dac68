"""`/`: a small page linking to each course's sign-up page, or a redirect to DRIP_HOME_URL."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template
from flask.typing import ResponseReturnValue

from drip.web.context import services

bp = Blueprint("home", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    svc = services()
    if svc.settings.home_url:
        return redirect(svc.settings.home_url, 302)
    library = svc.content.library()
    sequences = sorted(library.sequences.values(), key=lambda s: s.title.lower())
    return render_template("public/home.html", sequences=sequences)
