"""The admin's Broadcasts page, /admin/broadcasts: write one (or upload its .md), see it as
a sample reader would, send a test to your own address, see how many readers it would
reach, schedule it, cancel it, and watch it go out.

A blueprint nested in the admin's (`admin.bp.register_blueprint`), so its login check and
headers apply. The handlers are thin: drip.dispatch.broadcasts does the work, and what is written
here is a draft row in the database, scheduled and sent by the worker exactly as one from
`drip broadcast send`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from drip.audience.subscriptions import SubscriptionError
from drip.content.names import broadcast_name as name_for
from drip.content.sequences import Library, Problem
from drip.dispatch.broadcast_report import report
from drip.dispatch.broadcast_variants import SHARE, VARIANT_KEYS
from drip.dispatch.broadcasts import (
    READER_WORDS,
    BroadcastError,
    BroadcastFile,
    as_file,
    audience_count,
    broadcast_from,
    cancel,
    create_draft,
    edit_draft,
    next_due,
    parse_broadcast,
    parse_when,
    preview,
    schedule_draft,
    send_test,
)
from drip.mail.render import SAMPLE_READER
from drip.mail.transports import SendError
from drip.store.models import Broadcast, BroadcastStatus, Role, Segment
from drip.studio.samples import TooManyTests, count_test
from drip.web.admin.access import audit, requires
from drip.web.context import db_session, services

bp = Blueprint("broadcasts", __name__, url_prefix="/broadcasts")

MAX_UPLOAD = 256 * 1024  # a broadcast is a page of Markdown, not a book


def _fields(form: MultiDict[str, str]) -> dict[str, Any]:
    """The write form as front matter: the same keys a broadcast file has."""
    return {
        "subject": form.get("subject", ""),
        "preheader": form.get("preheader", ""),
        "to": form.getlist("to"),
        "readers": form.get("readers", "both"),
        "tags": [tag for tag in form.get("tags", "").replace(",", " ").split() if tag],
        "segment": form.get("segment", ""),
        # a checkbox posts nothing when unticked: the hidden field says the form was shown
        "engagement": form.get("engagement") or ("all" if form.get("engagement_shown") else None),
        **_test_fields(form),
    }


def _test_fields(form: MultiDict[str, str]) -> dict[str, Any]:
    """The form's test of a second subject as a file's keys (drip.dispatch.broadcast_variants),
    or none when variant b is left empty."""
    b = {key: form.get(f"{key}_b", "").strip() for key in VARIANT_KEYS}
    if not any(b.values()):
        return {}
    return {
        "variants": {"b": {key: value for key, value in b.items() if value}},
        "test_share": form.get("test_share", "").strip() or f"{SHARE}%",
        "decide_after": form.get("decide_after", "").strip() or "4h",
    }


def _form_spec(library: Library, name: str | None = None) -> BroadcastFile:
    """The posted form, checked as every way in is (`broadcast_from`): writing a new one
    (named for its subject) and editing a draft (`name`, kept) both go through here."""
    fields = _fields(request.form)
    return broadcast_from(
        fields,
        request.form.get("body", "").replace("\r\n", "\n"),
        library,
        path=Path("form"),
        name=name or name_for(fields["subject"]),
    )


def _as_form(broadcast: Broadcast) -> MultiDict[str, str]:
    """A draft as the form posts it, to fill in its Edit form."""
    audience = broadcast.audience
    form: MultiDict[str, str] = MultiDict(
        {
            "subject": broadcast.subject,
            "preheader": broadcast.preheader,
            "body": broadcast.body,
            "readers": audience.get("readers", "both"),
            "tags": ", ".join(audience.get("tags", [])),
            "segment": audience.get("segment", ""),
            "engagement": audience.get("engagement", "all"),
        }
    )
    for slug in audience.get("to", []):
        form.add("to", slug)
    for key, value in audience.get("variants", {}).get("b", {}).items():
        form[f"{key}_b"] = value
    if audience.get("variants"):
        form["test_share"] = audience.get("test_share", f"{SHARE}%")
        form["decide_after"] = audience.get("decide_after", "4h")
    return form


def _form_fields(
    session: Session, library: Library, form: MultiDict[str, str], problems: list[str] | None
) -> dict[str, Any]:
    """What the broadcast form (templates/admin/_broadcast_form.html) needs, for writing a
    new one and for editing a draft alike."""
    return {
        "sequences": sorted(library.sequences.values(), key=lambda s: s.slug),
        "segments": session.scalars(select(Segment.name).order_by(Segment.name)).all(),
        "readers": READER_WORDS,  # each `readers:` value in words
        "form": form,
        "chosen": set(form.getlist("to")),
        "problems": problems or [],
    }


def _page(problems: list[str] | None = None, status: int = 200) -> ResponseReturnValue:
    session = db_session()
    library = services().content.library()
    shown = session.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(30)).all()
    # A GET may start the form filled in: the Segments page links to ?segment=NAME.
    form = request.form if request.method == "POST" else request.args
    return (
        render_template(
            "admin/broadcasts.html",
            broadcasts=[(b, report(session, b, library)) for b in shown],
            **_form_fields(session, library, form, problems),
        ),
        status,
    )


def _said(problem: Problem, named: bool) -> str:
    return (
        f"{problem.path.name}, line {problem.line}: {problem.message}" if named else problem.message
    )


@bp.get("/")
def page() -> ResponseReturnValue:
    return _page()


@bp.post("/")
@requires(Role.editor)  # a draft sends nothing: scheduling it is an owner's
def write() -> ResponseReturnValue:
    """A draft from the form or from an uploaded .md; on a mistake the form comes back
    filled in, with every problem listed."""
    svc = services()
    library = svc.content.library()
    upload = request.files.get("file")
    try:
        if upload and upload.filename:
            data = upload.read(MAX_UPLOAD + 1)
            if len(data) > MAX_UPLOAD:
                return _page([f"{upload.filename}: larger than {MAX_UPLOAD // 1024} KB"], 400)
            text = data.decode("utf-8-sig", errors="replace")
            spec = parse_broadcast(text, Path(Path(upload.filename).name), library)
        else:
            spec = _form_spec(library)
        session = db_session()
        audience_count(session, spec, svc.clock())  # an unknown segment is refused here
    except BroadcastError as error:
        named = bool(upload and upload.filename)  # an upload's problems name it and the line
        return _page([_said(problem, named) for problem in error.problems], 400)
    broadcast = create_draft(session, spec, svc.clock(), g.operator.email)
    session.commit()
    return redirect(url_for(".show", broadcast_id=broadcast.id))


def _broadcast(broadcast_id: int) -> Broadcast:
    found = db_session().get(Broadcast, broadcast_id)
    if found is None:
        abort(404)
    return found


@bp.get("/<int:broadcast_id>")
def show(broadcast_id: int) -> ResponseReturnValue:
    broadcast = _broadcast(broadcast_id)
    return _show(broadcast, _as_form(broadcast))


def _show(
    broadcast: Broadcast,
    form: MultiDict[str, str],
    problems: list[str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    """The broadcast: its preview, its audience now (a draft), its Edit form (a draft:
    `form` as saved, or as typed when `problems` refused it) and its progress."""
    svc = services()
    session = db_session()
    library = svc.content.library()
    try:
        total, first = audience_count(session, broadcast.audience, svc.clock())
        audience_problem = ""
    except BroadcastError as error:  # its segment was deleted since
        total, first, audience_problem = 0, [], str(error.problems[0].message)
    try:
        subject, html, text = preview(svc.renderer, library, broadcast, svc.links)
    except BroadcastError as error:  # none of its courses can be read just now
        subject, html, text = broadcast.subject, "", str(error)
    return (
        render_template(
            "admin/broadcast.html",
            broadcast=broadcast,
            progress=report(session, broadcast, library),
            next_window=_next_window(next_due(session, broadcast.id), svc.clock()),
            audience_total=total,
            audience_first=first,
            audience_problem=audience_problem,
            subject=subject,
            html=html,
            text=text,
            draft=broadcast.status == BroadcastStatus.DRAFT,
            sample=SAMPLE_READER,
            **_form_fields(session, library, form, problems),
        ),
        status,
    )


def _next_window(due: datetime | None, now: datetime) -> str:
    """When the copies still waiting go out, in words (none waiting: "")."""
    if due is None:
        return ""
    if due <= now:
        return "Copies are going out now: each dispatch pass sends the next ones."
    day = "" if due.date() == now.date() else f"{due:%a %d %b} "
    return (
        f"Next send window opens {day}{due:%H:%M} UTC: the copies waiting go out then, "
        "each reader's in their course's send window."
    )


@bp.post("/<int:broadcast_id>/edit")
@requires(Role.editor)  # like writing one: a draft sends nothing
def edit(broadcast_id: int) -> ResponseReturnValue:
    """Save the Edit form over a draft, checked exactly as a new one; on a problem the page
    comes back with every problem and the form as typed, and the draft is unchanged."""
    svc = services()
    session = db_session()
    broadcast = _broadcast(broadcast_id)
    if broadcast.status != BroadcastStatus.DRAFT:
        flash(
            f"Not edited: the broadcast is {broadcast.status}; only a draft can be edited.",
            "error",
        )
        return redirect(url_for(".show", broadcast_id=broadcast_id))
    before = as_file(broadcast)
    try:
        spec = _form_spec(svc.content.library(), broadcast.name)
        audience_count(session, spec, svc.clock())  # an unknown segment is refused here
        edited = edit_draft(session, broadcast_id, spec)
    except BroadcastError as error:
        session.rollback()
        return _show(
            _broadcast(broadcast_id), request.form, [p.message for p in error.problems], 400
        )
    audit("edit broadcast", f"broadcast {broadcast_id}", before=before, after=as_file(edited))
    session.commit()
    flash("The draft is saved.", "ok")
    return redirect(url_for(".show", broadcast_id=broadcast_id))


@bp.get("/<int:broadcast_id>.json")
def progress_json(broadcast_id: int) -> ResponseReturnValue:
    """What the page's bars poll while the broadcast goes out."""
    return jsonify(report(db_session(), _broadcast(broadcast_id), services().content.library()))


@bp.post("/<int:broadcast_id>/test")
@requires(Role.editor)
def test(broadcast_id: int) -> ResponseReturnValue:
    """The broadcast to the operator's own address, marked [TEST]."""
    svc = services()
    broadcast = _broadcast(broadcast_id)
    to = request.form.get("to", "").strip() or g.operator.email
    try:
        count_test(db_session(), g.operator.email, svc.clock())
        db_session().commit()  # counted before it goes, for every worker to see
        send_test(
            svc.renderer,
            svc.content.library(),
            broadcast,
            svc.links,
            svc.transport,
            to,
            svc.clock(),
        )
    except (TooManyTests, SendError, SubscriptionError, BroadcastError) as error:
        flash(f"The test did not go out: {error}", "error")
    else:
        flash(f"Sent [TEST] {broadcast.subject} to {to}.", "ok")
    return redirect(url_for(".show", broadcast_id=broadcast_id))


@bp.post("/<int:broadcast_id>/schedule")
def schedule(broadcast_id: int) -> ResponseReturnValue:
    svc = services()
    session = db_session()
    broadcast = _broadcast(broadcast_id)
    try:
        at = parse_when(request.form.get("at", ""), request.form.get("zone", "UTC"), svc.clock())
        written = schedule_draft(session, svc.content.library(), broadcast, at, svc.clock())
    except BroadcastError as error:
        session.rollback()
        flash("; ".join(problem.message for problem in error.problems), "error")
    else:
        flash(
            f"Scheduled for {at:%Y-%m-%d %H:%M} UTC: {written} readers, each in their own "
            "send window at or after it.",
            "ok",
        )
    return redirect(url_for(".show", broadcast_id=broadcast_id))


@bp.post("/<int:broadcast_id>/cancel")
def cancel_view(broadcast_id: int) -> ResponseReturnValue:
    session = db_session()
    _broadcast(broadcast_id)
    try:
        skipped = cancel(session, broadcast_id, services().clock())
    except BroadcastError as error:
        flash(f"Not canceled: {error.problems[0].message}.", "error")
    else:
        flash(f"Broadcast {broadcast_id} canceled: {skipped} readers will not get it.", "ok")
    return redirect(url_for(".show", broadcast_id=broadcast_id))
