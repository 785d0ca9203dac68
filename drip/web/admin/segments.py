"""The admin's Segments page, /admin/segments: every saved filter of readers in plain words
with its count now, a form to make or change one (with its count before saving), delete,
and "save this filter as a segment" from the readers list.

A blueprint nested in the admin's, so its login check, roles and audit log apply; every
change is an owner's (the default for a POST). The handlers are thin: drip.audience.segments checks,
saves and counts, exactly as for `drip segment create`, so a segment made here and one made
on the command line are the same row.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from drip.audience import segments
from drip.audience.segments import LISTS, WITHIN, SegmentError
from drip.audience.signup import RESPONSIBILITIES
from drip.store.filters import Filters
from drip.store.models import EnrollmentStatus, Segment
from drip.web.admin.access import unrecorded
from drip.web.context import db_session, services

bp = Blueprint("segments", __name__, url_prefix="/segments")

CHECKBOXES = ("sequences", "status", "responsibilities", "engagement")  # ticked, not typed
TYPED = ("tags", "without_tags")  # the lists typed, separated by commas or spaces


def _values_of(definition: dict[str, Any]) -> dict[str, Any]:
    """A definition as the form shows it."""
    values: dict[str, Any] = {key: list(definition.get(key, [])) for key in CHECKBOXES}
    values.update({key: ", ".join(definition.get(key, [])) for key in TYPED})
    values.update(
        {key: str(definition.get(key, "")) for key in ("exam_before", "exam_after", *WITHIN)}
    )
    return values


def _values_from(form: MultiDict[str, str]) -> dict[str, Any]:
    """What was posted, as the form shows it again (nothing typed is lost)."""
    values: dict[str, Any] = {key: form.getlist(key) for key in CHECKBOXES}
    values.update(
        {key: form.get(key, "") for key in (*TYPED, "exam_before", "exam_after", *WITHIN)}
    )
    return values


def _raw(values: dict[str, Any]) -> dict[str, Any]:
    """The form's values as the definition drip.audience.segments.parse checks."""
    raw = dict(values)
    for key in TYPED:
        raw[key] = [word for word in str(values[key]).replace(",", " ").split() if word]
    return raw


def _problems(error: SegmentError) -> dict[str, list[str]]:
    """Each problem under the field it names ("exam_before: ..."), so the form shows it
    beside that field; one that names no field goes under ""."""
    fields = {"name", *LISTS, "exam_before", "exam_after", *WITHIN}
    found: dict[str, list[str]] = {}
    for problem in error.problems:
        key, _, rest = problem.partition(": ")
        if key in fields and rest:
            found.setdefault(key, []).append(rest)
        else:
            found.setdefault("", []).append(problem)
    return found


def _known() -> frozenset[str]:
    return frozenset(services().content.library().sequences)


def _form(
    values: dict[str, Any],
    *,
    editing: Segment | None = None,
    name: str = "",
    problems: dict[str, list[str]] | None = None,
    members: segments.Members | None = None,
    words: str = "",
    status: int = 200,
) -> ResponseReturnValue:
    return (
        render_template(
            "admin/segment.html",
            values=values,
            editing=editing,
            name=name,
            problems=problems or {},
            members=members,
            words=words,
            sequences=sorted(_known()),
            statuses=[s.value for s in EnrollmentStatus],
            responsibilities=RESPONSIBILITIES,
        ),
        status,
    )


def _segment_or_404(name: str) -> Segment:
    try:
        return segments.named(db_session(), name)
    except SegmentError:
        abort(404)


@bp.get("/")
def page() -> ResponseReturnValue:
    """Every segment in words. Their counts come one request each (`count_json`, asked by
    admin.js as the page opens), so the page costs nothing per reader: one segment over
    the whole list can take a database a few hundred milliseconds at 100,000 readers."""
    rows: list[tuple[Segment, str]] = []
    for segment in db_session().scalars(select(Segment).order_by(Segment.name)):
        try:
            rows.append((segment, segments.in_words(segments.parse(segment.definition))))
        except SegmentError as error:  # saved by an older drip: shown, never counted
            rows.append((segment, str(error)))
    return render_template("admin/segments.html", rows=rows)


@bp.get("/<name>/count.json")
def count_json(name: str) -> ResponseReturnValue:
    """How many readers the segment holds now, counted by the database."""
    segment = _segment_or_404(name)
    try:
        definition = segments.parse(segment.definition)
    except SegmentError as error:
        return jsonify(name=segment.name, error=str(error)), 409
    return jsonify(
        name=segment.name, count=segments.count(db_session(), definition, services().clock())
    )


@bp.get("/new")
def new() -> ResponseReturnValue:
    return _form(_values_of({}))


@bp.post("/count")
@unrecorded  # counts, changes nothing
def count() -> ResponseReturnValue:
    """The form again with how many readers it selects now, and the first few; nothing is
    saved. The new form and the edit form both post here (their Count button)."""
    values = _values_from(request.form)
    editing = request.form.get("editing", "")
    segment = _segment_or_404(editing) if editing else None
    session = db_session()
    try:
        definition = segments.parse(_raw(values), _known())
    except SegmentError as error:
        return _form(
            values,
            editing=segment,
            name=request.form.get("name", ""),
            problems=_problems(error),
            status=400,
        )
    return _form(
        values,
        editing=segment,
        name=request.form.get("name", ""),
        members=segments.members(session, definition, services().clock()),
        words=segments.in_words(definition),
    )


def _save(name: str, values: dict[str, Any], editing: Segment | None) -> ResponseReturnValue:
    svc = services()
    session = db_session()
    try:
        segment = segments.save(
            session,
            name,
            _raw(values),
            svc.clock(),
            g.operator.email,
            _known(),
            replace=editing is not None,
        )
    except SegmentError as error:
        session.rollback()
        return _form(values, editing=editing, name=name, problems=_problems(error), status=400)
    session.commit()
    total = segments.count(session, segment.definition, svc.clock())
    flash(
        f"Segment {segment.name} saved: {total:,} {'reader' if total == 1 else 'readers'} now "
        f"({segments.in_words(segment.definition)}).",
        "ok",
    )
    return redirect(url_for(".page"))


@bp.post("/new")
def create() -> ResponseReturnValue:
    return _save(request.form.get("name", ""), _values_from(request.form), None)


@bp.get("/<name>/edit")
def edit(name: str) -> ResponseReturnValue:
    """The segment in its form, with its count now."""
    segment = _segment_or_404(name)
    definition = segments.parse(segment.definition)
    return _form(
        _values_of(definition),
        editing=segment,
        name=segment.name,
        members=segments.members(db_session(), definition, services().clock()),
        words=segments.in_words(definition),
    )


@bp.post("/<name>/edit")
def update(name: str) -> ResponseReturnValue:
    """A new definition under the same name (the name stays: drafts refer to it)."""
    segment = _segment_or_404(name)
    return _save(segment.name, _values_from(request.form), segment)


@bp.post("/<name>/delete")
def delete(name: str) -> ResponseReturnValue:
    """Forget the segment; broadcasts already scheduled with it keep their readers."""
    session = db_session()
    segment = _segment_or_404(name)
    session.delete(segment)
    session.commit()
    flash(
        f"Segment {name} deleted. Broadcasts already scheduled with it keep their readers.",
        "ok",
    )
    return redirect(url_for(".page"))


@bp.post("/from-filter")
def from_filter() -> ResponseReturnValue:
    """The readers list's sequence, status and tag filter, saved as a segment; then the
    list shows the segment, which selects the same rows."""
    svc = services()
    session = db_session()
    form = request.form
    filters = Filters(
        sequence=form.get("sequence", ""),
        status=form.get("status", ""),
        tag=form.get("tag", "").strip().lower(),
        engagement=form.get("engagement", "").strip().lower(),
    )
    back: dict[str, Any] = {
        key: value
        for key, value in (
            ("sequence", filters.sequence),
            ("status", filters.status),
            ("engagement", filters.engagement),
            ("tag", filters.tag),
        )
        if value
    }
    try:
        segment = segments.save(
            session,
            form.get("name", ""),
            segments.from_filters(filters),
            svc.clock(),
            g.operator.email,
            _known(),
        )
    except SegmentError as error:
        session.rollback()
        flash(f"Not saved: {error}.", "error")
        return redirect(url_for("admin.readers.index", **back))
    session.commit()
    flash(f"Segment {segment.name} saved: {segments.in_words(segment.definition)}.", "ok")
    return redirect(url_for("admin.readers.index", segment=segment.name))
