"""One reader's page: their courses, why each waits, the timeline, and the buttons that act
on one reader (pause, tag, suppress, export, erase)."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from drip.audience import exports, leaving
from drip.audience.controls import pause, restart, resume
from drip.audience.readers import erase_reader as erase_everything
from drip.audience.subscriptions import SubscriptionError
from drip.audience.tags import TagError, add_tags, clean_tag, reader_tags, remove_tag
from drip.ops.stats import (
    last_pass,
    scheduler_alive,
    when,
    why_waiting,
)
from drip.ops.timeline import timeline
from drip.store.models import (
    Enrollment,
    Role,
    Subscriber,
)
from drip.store.queries import paused_sequences
from drip.web.admin.access import audit, requires
from drip.web.context import db_session, services

bp = Blueprint("reader", __name__)


@bp.get("/readers/<int:subscriber_id>")
def page(subscriber_id: int) -> ResponseReturnValue:
    svc = services()
    session = db_session()
    subscriber = session.get(Subscriber, subscriber_id) or abort(404)
    now = svc.clock()
    library = svc.content.library()
    paused = paused_sequences(session)
    beat = last_pass(session)
    alive = scheduler_alive(
        beat.last_pass_at if beat else None, now, svc.settings.dispatch_interval
    )
    enrollments = [
        (
            e,
            why_waiting(
                e,
                library.get(e.sequence),
                sequence_paused=e.sequence in paused,
                now=now,
                alive=alive,
            ),
            timeline(session, e),
        )
        for e in subscriber.enrollments
    ]
    return render_template(
        "admin/reader.html",
        subscriber=subscriber,
        tags=reader_tags(session, subscriber.id),
        enrollments=enrollments,
        now=now,
        when=when,
        library=library,
    )


def _enrollment_or_404(session: Session, enrollment_id: int) -> Enrollment:
    return session.get(Enrollment, enrollment_id) or abort(404)


@bp.post("/enrollments/<int:enrollment_id>/<any(pause, resume, restart):action>")
def enrollment_action(enrollment_id: int, action: str) -> ResponseReturnValue:
    svc = services()
    session = db_session()
    enrollment = _enrollment_or_404(session, enrollment_id)
    now = svc.clock()
    try:
        if action == "pause":
            pause(session, enrollment, now, f"paused by {g.operator.email}")
        elif action == "resume":
            resume(session, svc.content.library(), enrollment, now)
        else:
            restart(session, svc.content.library(), enrollment, now)
    except SubscriptionError as error:
        session.rollback()
        flash(f"Could not {action}: {error}", "error")
    else:
        session.commit()
        flash(f"{enrollment.sequence}: {action} done; status {enrollment.status}.", "ok")
    return redirect(url_for("admin.reader.page", subscriber_id=enrollment.subscriber_id))


@bp.post("/readers/<int:subscriber_id>/tags")
def tag(subscriber_id: int) -> ResponseReturnValue:
    """Add a tag (source "admin") or, with `remove`, take one off."""
    svc = services()
    session = db_session()
    subscriber = session.get(Subscriber, subscriber_id) or abort(404)
    removing = request.form.get("remove", "")
    source = f"admin (by {g.operator.email})"
    try:
        if removing:
            changed = remove_tag(session, subscriber, removing, svc.clock(), source)
        else:
            changed = bool(
                add_tags(
                    session,
                    subscriber,
                    [request.form.get("tag", "")],
                    svc.clock(),
                    source,
                    svc.content.library(),
                )
            )
    except TagError as error:
        session.rollback()
        flash(f"Tag not added: {error}.", "error")
    else:
        session.commit()
        tag = clean_tag(removing or request.form.get("tag", ""))
        had = "has no" if removing else "already has the"
        flash(
            f"Tag {tag} {'removed' if removing else 'added'}."
            if changed
            else f"Nothing to do: {subscriber.email} {had} tag {tag}.",
            "ok",
        )
    return redirect(url_for("admin.reader.page", subscriber_id=subscriber_id) + "#tags")


@bp.post("/readers/<int:subscriber_id>/suppress")
def suppress(subscriber_id: int) -> ResponseReturnValue:
    session = db_session()
    subscriber = session.get(Subscriber, subscriber_id) or abort(404)
    leaving.suppress(session, subscriber, services().clock(), f"suppressed by {g.operator.email}")
    session.commit()
    flash(f"{subscriber.email} is suppressed: nothing more goes out to it.", "ok")
    return redirect(url_for("admin.reader.page", subscriber_id=subscriber_id))


@bp.get("/readers/<int:subscriber_id>/export")
@requires(Role.owner)  # a reader's whole file, to hand over: not for every role that reads
def export(subscriber_id: int) -> ResponseReturnValue:
    session = db_session()
    subscriber = session.get(Subscriber, subscriber_id) or abort(404)
    return Response(
        exports.reader_json(session, subscriber),
        mimetype="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="reader-{subscriber_id}.json"',
            "Cache-Control": "no-store",
        },
    )


@bp.post("/readers/<int:subscriber_id>/erase")
def erase(subscriber_id: int) -> ResponseReturnValue:
    session = db_session()
    subscriber = session.get(Subscriber, subscriber_id) or abort(404)
    if request.form.get("confirm_email", "").strip().lower() != subscriber.email:
        flash("Type the reader's address to confirm the erasure.", "error")
        return redirect(url_for("admin.reader.page", subscriber_id=subscriber_id))
    address = subscriber.email
    # Logged before: erasing commits. The entry names no address, which is erased with the rest.
    audit("erase reader", f"reader {subscriber_id}")
    removed = erase_everything(session, subscriber, services().settings)
    files = f"{removed} message{'s' if removed != 1 else ''} in the outbox"
    flash(
        f"Erased {address} and everything about them"
        + (f", including {files}." if removed else "."),
        "ok",
    )
    return redirect(url_for("admin.readers.index"))
