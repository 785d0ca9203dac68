"""The readers list, its filters and the bulk actions on the readers a filter selects."""

from __future__ import annotations

from dataclasses import replace

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from drip.audience import bulk, exports, segments
from drip.audience.segments import SegmentError
from drip.audience.segments import named as named_segment
from drip.store import queries
from drip.store.models import (
    EnrollmentStatus,
    Role,
    Segment,
)
from drip.web.admin.access import requires
from drip.web.admin.reader_filters import MAX_ID
from drip.web.admin.reader_filters import cursor as _cursor
from drip.web.admin.reader_filters import filter_args as _filter_args
from drip.web.admin.reader_filters import filters as _filters
from drip.web.admin.reader_filters import with_segment as _with_segment
from drip.web.context import db_session, services

bp = Blueprint("readers", __name__)


@bp.get("/readers")
def index() -> ResponseReturnValue:
    asked = _filters()
    filters = _with_segment(asked)
    if filters is None:
        return redirect(url_for("admin.readers.index", **_filter_args(replace(asked, segment=""))))
    session = db_session()
    page = queries.readers_page(session, _cursor(), filters)
    return render_template(
        "admin/readers.html",
        page=page,
        q=filters.address,
        status=filters.status,
        sequence=filters.sequence,
        tag=filters.tag,
        segment=filters.segment,
        engagement=filters.engagement,
        segment_words=segments.in_words(named_segment(session, filters.segment).definition)
        if filters.segment
        else "",
        segment_names=session.scalars(select(Segment.name).order_by(Segment.name)).all(),
        args=_filter_args(filters),
        actions=bulk.ACTIONS,
        statuses=list(EnrollmentStatus),
        sequences=sorted(services().content.library().sequences),
    )


def _order() -> bulk.Order:
    form = request.form
    try:
        filters = segments.narrowed(db_session(), _filters(), services().clock())
    except SegmentError as error:
        raise bulk.BulkError(str(error)) from None
    return bulk.check(
        bulk.Order(
            form.get("action", ""),
            filters,
            target=form.get("target", ""),
            tag=form.get("bulk_tag", ""),
        ),
        services().content.library(),
    )


@bp.post("/readers/bulk")
def bulk_preview() -> ResponseReturnValue:
    """The confirmation: how many readers the action would change, carrying the filter."""
    filters = _filters()
    try:
        order = _order()
    except bulk.BulkError as error:
        flash(f"Nothing done: {error}.", "error")
        return redirect(url_for("admin.readers.index", **_filter_args(filters)))
    number = bulk.count(db_session(), services().content.library(), order)
    return render_template(
        "admin/bulk.html", order=order, number=number, bulk=bulk, args=_filter_args(filters)
    )


@bp.post("/readers/bulk/run")
def bulk_run() -> ResponseReturnValue:
    """Carry the confirmed action out for a couple of seconds of batches; a large selection
    comes back to a progress page that goes on from where it stopped."""
    svc = services()
    filters = _filters()
    back = url_for("admin.readers.index", **_filter_args(filters))
    try:
        order = _order()
    except bulk.BulkError as error:
        flash(f"Nothing done: {error}.", "error")
        return redirect(back)
    expected = request.form.get("expected", "")
    if order.action == "erase" and request.form.get("typed", "").strip().replace(",", "") != (
        expected
    ):
        flash(f"Nothing erased: type the number of readers ({expected}) to confirm.", "error")
        return redirect(back)
    after, done = (
        int(value) if value.isascii() and value.isdigit() else 0
        for value in (request.form.get("after", "0"), request.form.get("done", "0"))
    )
    result = bulk.run(
        db_session(),
        svc.content.library(),
        svc.settings,
        order,
        after=min(after, MAX_ID),
        now=svc.clock(),
        who=g.operator.email,
    )
    done += result.changed
    if result.after is not None:
        return render_template(
            "admin/bulk.html",
            order=order,
            number=int(expected) if expected.isdigit() else done,
            bulk=bulk,
            args=_filter_args(filters),
            after=result.after,
            done=done,
        )
    flash(bulk.sentence(order, done, done=True), "ok")
    return redirect(back)


@bp.get("/readers/export.csv")
@requires(Role.owner)  # the addresses of everyone the filter selects: owners only
def export_selected() -> ResponseReturnValue:
    """The rows the readers list shows for its filters, streamed."""
    filters = _with_segment(_filters())
    if filters is None:
        return redirect(url_for("admin.readers.index"))
    return Response(
        stream_with_context(
            exports.readers_csv(services().sessions, services().clock(), filters=filters)
        ),
        mimetype="text/csv",
        headers={
            "Content-Disposition": 'attachment; filename="drip-readers-selected.csv"',
            "Cache-Control": "no-store",
        },
    )
