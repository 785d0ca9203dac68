"""Importing readers from a CSV file (a job the worker carries out) and exporting them."""

from __future__ import annotations

import io

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from drip.audience import exports
from drip.audience.imports import queue_import
from drip.audience.segments import SegmentError
from drip.audience.segments import named as named_segment
from drip.audience.subscriptions import SubscriptionError
from drip.store.models import (
    ImportJob,
    Role,
    Segment,
)
from drip.web.admin.access import requires
from drip.web.context import db_session, services

bp = Blueprint("imports", __name__)


@bp.route("/import", methods=["GET", "POST"])
def index() -> ResponseReturnValue:
    """The upload starts an import job and leads to its page; the worker does the work, so
    the import survives this request however long the file (drip.audience.imports)."""
    svc = services()
    library = svc.content.library()
    session = db_session()
    if request.method == "POST":
        upload = request.files.get("file")
        stream = (  # read as the job's file is written, a block at a time
            io.TextIOWrapper(upload.stream, encoding="utf-8-sig", errors="replace", newline="")
            if upload
            else io.StringIO("")
        )
        source = request.form.get("source", "").strip()
        try:
            if not source:
                raise SubscriptionError("say where these readers gave their consent (the source)")
            job = queue_import(
                session,
                library,
                stream,
                filename=upload.filename or "upload.csv" if upload else "",
                sequence=request.form.get("sequence", ""),
                confirmed=request.form.get("confirmed") == "yes",
                source=f"{source} (import by {g.operator.email})"[:200],
                who=g.operator.email,
                now=svc.clock(),
                data_dir=svc.settings.data_dir,
            )
        except SubscriptionError as error:
            session.rollback()
            flash(str(error), "error")
        else:
            session.commit()
            return redirect(url_for("admin.imports.job", job_id=job.id))
    jobs = session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(10)).all()
    return render_template(
        "admin/import.html",
        sequences=sorted(library.sequences),
        form=request.form,
        jobs=jobs,
        segments=session.scalars(select(Segment.name).order_by(Segment.name)).all(),
    )


@bp.get("/import/<int:job_id>")
def job(job_id: int) -> ResponseReturnValue:
    """An import's progress; the page reloads itself while the worker is at it."""
    job = db_session().get(ImportJob, job_id) or abort(404)
    return render_template("admin/import_job.html", job=job)


@bp.get("/import/<int:job_id>.json")
def job_json(job_id: int) -> ResponseReturnValue:
    job = db_session().get(ImportJob, job_id) or abort(404)
    return jsonify(
        id=job.id,
        status=job.status,
        total=job.total,
        processed=job.processed,
        added=job.added,
        updated=job.updated,
        refused=job.refused,
        errors=job.errors,
        last_error=job.last_error,
    )


@bp.get("/export.csv")
@requires(Role.owner)  # every reader's address at once: owners only
def export_csv() -> ResponseReturnValue:
    """Every reader (or a segment's: ?segment=NAME) and each enrollment's status, streamed
    row by row."""
    segment = request.args.get("segment", "").strip() or None
    if segment:
        try:
            segment = named_segment(db_session(), segment).name
        except SegmentError as error:
            flash(str(error), "error")
            return redirect(url_for("admin.imports.index"))
    return Response(
        stream_with_context(exports.readers_csv(services().sessions, services().clock(), segment)),
        mimetype="text/csv",
        headers={
            "Content-Disposition": 'attachment; filename="drip-readers.csv"',
            "Cache-Control": "no-store",
        },
    )
