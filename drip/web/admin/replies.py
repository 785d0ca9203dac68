"""/admin/replies: readers' replies, newest first, each with its reader and the lesson it
answers; filtered by course and lesson; marked done (which lets a reader held by
`pause_on_reply` have their next lesson). Unmatched replies (no signed reply address, or a
forged one) are listed apart and change nothing.

A blueprint nested in the admin's, so its login check, roles and audit log apply.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from drip.replies.listing import PAGE, replies_page, waiting
from drip.replies.matching import NoSuchReply, mark_done
from drip.store.models import Operator
from drip.web.admin.access import audit
from drip.web.context import db_session, services

bp = Blueprint("replies", __name__)


@bp.get("/replies")
def page() -> ResponseReturnValue:
    svc = services()
    library = svc.content.library()
    sequence = request.args.get("sequence", "").strip()
    lesson = request.args.get("lesson", "").strip() if sequence else ""
    unmatched = request.args.get("show") == "unmatched"
    before = request.args.get("before", type=int)
    rows = replies_page(
        db_session(),
        library,
        sequence=sequence,
        lesson=lesson,
        unmatched=unmatched,
        before=before,
    )
    course = library.get(sequence)
    return render_template(
        "admin/replies.html",
        rows=rows,
        sequences=sorted(library.sequences.values(), key=lambda s: s.title),
        lessons=course.lessons if course else (),
        sequence=sequence,
        lesson=lesson,
        unmatched=unmatched,
        waiting=waiting(db_session()),
        older=rows[-1].reply.id if len(rows) == PAGE else None,
    )


@bp.post("/replies/<int:reply_id>/done")
def done(reply_id: int) -> ResponseReturnValue:
    """Mark a reply done: the author has dealt with it. Owners only (the admin's default
    for a POST), as it may resume a reader held by `pause_on_reply`."""
    svc = services()
    session = db_session()
    operator: Operator = g.operator
    try:
        reply = mark_done(session, svc.content.library(), reply_id, svc.clock(), operator.email)
    except NoSuchReply:
        abort(404)
    audit("mark reply done", f"reply {reply.id} from {reply.sender}")
    session.commit()
    flash(f"Marked done: the reply from {reply.sender}.", "ok")
    back = {k: request.form[k] for k in ("sequence", "lesson") if request.form.get(k)}
    return redirect(url_for("admin.replies.page", **back))  # type: ignore[arg-type]
