"""The courses list and the button that pauses or resumes a whole course."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    url_for,
)
from flask.typing import ResponseReturnValue

from drip.audience.controls import set_sequence_paused
from drip.ops.course_problems import course_problems
from drip.store import queries
from drip.store.queries import paused_sequences
from drip.web.context import db_session, services

bp = Blueprint("sequences", __name__)


@bp.get("/sequences")
def index() -> ResponseReturnValue:
    session = db_session()
    svc = services()
    library = svc.content.library()
    return render_template(
        "admin/sequences.html",
        library=library,
        course_problems=[
            p
            for p in course_problems(session, library, svc.settings.sequences_dir)
            if p.fix == "sequences"
        ],
        counts=queries.counts_by_sequence_and_status(session),
        paused=paused_sequences(session),
        waiting=queries.sign_ups_waiting_by_sequence(session),
    )


@bp.post("/sequences/<slug>/<any(pause, resume):action>")
def pause_or_resume(slug: str, action: str) -> ResponseReturnValue:
    library = services().content.library()
    if slug not in library.sequences and slug not in library.broken:
        abort(404)
    session = db_session()
    set_sequence_paused(session, slug, action == "pause", services().clock())
    session.commit()
    flash(
        f"{slug} is {'paused: nothing in it goes out' if action == 'pause' else 'sending'}.", "ok"
    )
    return redirect(url_for("admin.studio.sequence", slug=slug))
