"""The operator's pages at /admin: is sending healthy, who is where, what failed, and the
buttons to act. Every handler is thin: it reads the request, calls plain functions of a
session and a clock (drip.ops.stats, drip.store.queries, drip.ops.timeline,
drip.audience.subscriptions, drip.ops.operators; drip.mail.outbox and drip.audience.exports for
files), commits, and renders. The course editor (the sequence pages) is its own blueprint nested
here, drip.web.studio.lessons.

Access: every view but the login page needs a logged-in operator (`require_operator`); the
cookie holds the random id of a session row (drip.ops.operator_sessions), looked up on every
request, so a cookie signed with the secret key but matching no row opens nothing. Each view
also needs a role (drip.web.admin.access: a page needs a viewer, a change an owner, unless marked
with `@requires`), and every change that succeeds goes to the audit log. CSRF is checked
app-wide by Flask-WTF.
"""

from __future__ import annotations

import io
import zoneinfo
from dataclasses import replace
from datetime import datetime
from functools import cache
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    message_flashed,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask import session as web_session
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.audience import bulk, exports, segments
from drip.audience.controls import pause, restart, resume, retry_delivery, set_sequence_paused
from drip.audience.engagement import shares as engagement_shares
from drip.audience.imports import queue_import
from drip.audience.leaving import suppress
from drip.audience.readers import erase_reader as erase_everything
from drip.audience.segments import SegmentError
from drip.audience.segments import named as named_segment
from drip.audience.subscriptions import SubscriptionError
from drip.audience.tags import TagError, add_tags, clean_tag, reader_tags, remove_tag
from drip.deliverability import guardrails
from drip.deliverability.bounces import Policy
from drip.deliverability.sending_pause import (
    daily_rates,
    rates,
    resume_sending,
    sending_paused,
    unverified_reports,
)
from drip.dispatch.broadcasts import progress as broadcast_progress
from drip.integrations.api_keys import list_keys, revoke_key
from drip.integrations.hooks import HookError, replay
from drip.integrations.hooks import endpoints as hook_endpoints
from drip.mail import outbox as mail_folder
from drip.ops import audit as audit_log
from drip.ops import operator_sessions
from drip.ops.course_problems import course_problems
from drip.ops.operators import (
    OperatorError,
    authenticate,
    create_operator,
    new_password,
    operators,
    remove_operator,
    set_role,
)
from drip.ops.stats import (
    axis_ticks,
    daily,
    funnel,
    last_pass,
    overview,
    scheduler_alive,
    when,
    why_waiting,
)
from drip.ops.timeline import timeline
from drip.store import queries
from drip.store.filters import Filters
from drip.store.models import (
    ApiKey,
    Broadcast,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    ImportJob,
    Operator,
    Role,
    Segment,
    Subscriber,
    WebhookDelivery,
    WebhookEndpoint,
)
from drip.store.queries import Cursor, paused_sequences
from drip.web.admin import access, problem_links
from drip.web.admin import broadcasts as broadcasts_admin
from drip.web.admin import replies as replies_admin
from drip.web.admin import segments as segments_admin
from drip.web.admin import sessions as sessions_admin
from drip.web.admin.access import audit, current_operator, requires
from drip.web.admin.reader_filters import cursor as _cursor
from drip.web.admin.reader_filters import filter_args as _filter_args
from drip.web.admin.reader_filters import filters as _filters
from drip.web.admin.reader_filters import with_segment as _with_segment
from drip.web.context import db_session, services
from drip.web.studio import experiments, magnet_build
from drip.web.studio import lessons as studio
from drip.web.studio import site as site_editor

bp = Blueprint("admin", __name__, url_prefix="/admin")
# Nested blueprints: the login check and the roles below apply to their views too.
bp.register_blueprint(studio.bp)  # the course editor
bp.register_blueprint(experiments.bp)  # a lesson's variants and the winner's promotion
bp.register_blueprint(magnet_build.bp)  # /admin/sequences/<slug>/magnet/build
bp.register_blueprint(broadcasts_admin.bp)  # /admin/broadcasts/
bp.register_blueprint(site_editor.bp)  # /admin/site: site.yaml, the author
bp.register_blueprint(segments_admin.bp)  # /admin/segments/
bp.register_blueprint(sessions_admin.bp)  # /admin/account, ending operators' sessions
bp.register_blueprint(replies_admin.bp)  # /admin/replies: readers' replies

OPEN = frozenset({"admin.login"})  # the only view a logged-out visitor may see
MAX_ID = 2**31  # ids are 32-bit integers on PostgreSQL


# -- access ------------------------------------------------------------------------------------

bp.add_app_template_global(access.may, "may")


bp.add_app_template_filter(problem_links.where, "where")
bp.add_app_template_global(problem_links.fix_url, "fix_url")


@bp.app_template_global("time_zones")
@cache
def time_zones() -> tuple[str, ...]:
    """The IANA time zones a picker offers: every Area/City zone and UTC."""
    return ("UTC", *sorted(z for z in zoneinfo.available_timezones() if "/" in z))


bp.after_request(access.record_change)


@bp.record_once
def _watch_flashes(state: BlueprintSetupState) -> None:
    """A view that flashes an error did not do what was asked: not for the audit log."""
    message_flashed.connect(access.note_failure, state.app)


@bp.after_request
def private(response: Response) -> Response:
    """Admin pages hold personal data and buttons: never cached, never framed elsewhere."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


@bp.before_request
def require_operator() -> ResponseReturnValue | None:
    if request.endpoint in OPEN:
        return None
    if any(
        isinstance(value, int) and not 0 <= value < MAX_ID
        for value in (request.view_args or {}).values()
    ):
        abort(404)  # no row has such an id; the database's integer would overflow
    operator = current_operator()
    if operator is None:
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("admin.login", next=target))
    g.operator = operator
    g.operator_email = operator.email  # for the audit log, even once the account is gone
    return access.refuse_unless_allowed(operator)


def safe_next(value: str | None) -> str:
    """Only a path inside /admin on this site: never another host (open redirect)."""
    fallback = url_for("admin.dashboard")
    if (
        not value
        or "\\" in value
        or value.startswith("//")
        or not value.isprintable()
        or any(char.isspace() for char in value)
    ):
        return fallback  # CR/LF would split the Location header
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin"):
        return fallback
    return value


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("admin/login.html", next=target, email="", error=None)
    email = request.form.get("email", "")
    session = db_session()
    now = services().clock()
    result = authenticate(
        session, email, request.form.get("password", ""), request.remote_addr or "unknown", now
    )
    _log_login(session, email, result.operator, result.throttled, now)
    if result.operator is None:
        session.commit()
        error, status = (
            ("Too many failed logins. Wait 15 minutes and try again.", 429)
            if result.throttled
            else ("Wrong email or password.", 401)
        )
        return render_template("admin/login.html", next=target, email=email, error=error), status
    agent = request.headers.get("User-Agent", "")
    token = operator_sessions.open_session(
        session, result.operator, now, request.remote_addr or "", agent
    )
    session.commit()  # the login, its audit entry and its session row together
    web_session.clear()  # nothing from before the login carries over (session fixation)
    web_session[access.SESSION_KEY] = token
    return redirect(target)


def _log_login(
    session: Session, email: str, operator: Operator | None, throttled: bool, now: datetime
) -> None:
    """A login, or a wrong password for an operator's address (an owner sees someone trying
    an account); nothing for unknown addresses (what was typed may be a password) or for
    throttled attempts (refused before any check, and a guesser could fill the log)."""
    if operator is not None:
        audit_log.record(session, operator.email, "log in", "", now)
        return
    address = email.strip().lower()
    if not throttled and session.scalar(select(Operator.id).where(Operator.email == address)):
        audit_log.record(session, address, "failed login", "wrong password", now)


@bp.post("/logout")
@requires(Role.viewer)
def logout() -> ResponseReturnValue:
    """Ends this browser's session (its row goes); the operator's other sessions stay, and
    are ended one by one on their account page."""
    session = db_session()
    operator_sessions.end_session(session, g.operator_session_id, g.operator.id)
    audit("log out", "")
    session.commit()
    web_session.clear()
    return redirect(url_for("admin.login"))


# -- dashboard ---------------------------------------------------------------------------------


@bp.get("/")
def dashboard() -> ResponseReturnValue:
    svc = services()
    session = db_session()
    now = svc.clock()
    library = svc.content.library()
    days = daily(session, now)
    latest = queries.deliveries_page(session, Cursor(), Filters(), size=8).rows
    return render_template(
        "admin/dashboard.html",
        now=now,
        when=when,
        overview=overview(session, now, svc.settings.dispatch_interval),
        days=days,
        ticks=axis_ticks(max(max(d.sent, d.failed) for d in days)),
        latest=latest,
        funnels=[funnel(session, s) for s in library.sequences.values()],
        engagement=engagement_shares(session, now),  # per course, a day's share of each state
        paused=paused_sequences(session),
        sending_paused=sending_paused(session),
        rates=[(window, rates(session, window)) for window in (1_000, 10_000)],
        day_rates=daily_rates(session, {d.day: d.sent for d in days}, days[0].day, days[-1].day),
        limits=Policy.from_settings(svc.settings),
        unverified=unverified_reports(session),
        course_problems=course_problems(session, library, svc.settings.sequences_dir),
        sending_problems=guardrails.problems(svc.settings, library),
        sending_refused=bool(guardrails.blocking(svc.settings, library)),
    )


@bp.post("/sending/resume")
def resume_all_sending() -> ResponseReturnValue:
    session = db_session()
    if resume_sending(session, services().clock(), g.operator.email):
        session.commit()
        flash("Sending resumed for every sequence.", "ok")
    else:
        flash("Sending was not paused.", "ok")
    return redirect(url_for("admin.dashboard"))


# -- readers -----------------------------------------------------------------------------------


@bp.get("/readers")
def readers() -> ResponseReturnValue:
    asked = _filters()
    filters = _with_segment(asked)
    if filters is None:
        return redirect(url_for("admin.readers", **_filter_args(replace(asked, segment=""))))
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


# -- bulk actions on the readers a filter selects ----------------------------------------------


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
        return redirect(url_for("admin.readers", **_filter_args(filters)))
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
    back = url_for("admin.readers", **_filter_args(filters))
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
        return redirect(url_for("admin.readers"))
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


@bp.get("/readers/<int:subscriber_id>")
def reader(subscriber_id: int) -> ResponseReturnValue:
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
    return redirect(url_for("admin.reader", subscriber_id=enrollment.subscriber_id))


@bp.post("/readers/<int:subscriber_id>/tags")
def tag_reader(subscriber_id: int) -> ResponseReturnValue:
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
    return redirect(url_for("admin.reader", subscriber_id=subscriber_id) + "#tags")


@bp.post("/readers/<int:subscriber_id>/suppress")
def suppress_reader(subscriber_id: int) -> ResponseReturnValue:
    session = db_session()
    subscriber = session.get(Subscriber, subscriber_id) or abort(404)
    suppress(session, subscriber, services().clock(), f"suppressed by {g.operator.email}")
    session.commit()
    flash(f"{subscriber.email} is suppressed: nothing more goes out to it.", "ok")
    return redirect(url_for("admin.reader", subscriber_id=subscriber_id))


@bp.get("/readers/<int:subscriber_id>/export")
@requires(Role.owner)  # a reader's whole file, to hand over: not for every role that reads
def export_reader(subscriber_id: int) -> ResponseReturnValue:
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
def erase_reader(subscriber_id: int) -> ResponseReturnValue:
    session = db_session()
    subscriber = session.get(Subscriber, subscriber_id) or abort(404)
    if request.form.get("confirm_email", "").strip().lower() != subscriber.email:
        flash("Type the reader's address to confirm the erasure.", "error")
        return redirect(url_for("admin.reader", subscriber_id=subscriber_id))
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
    return redirect(url_for("admin.readers"))


# -- deliveries --------------------------------------------------------------------------------


@bp.get("/deliveries")
def deliveries() -> ResponseReturnValue:
    filters = _filters()
    session = db_session()
    page = queries.deliveries_page(session, _cursor(), filters)
    return render_template(
        "admin/deliveries.html",
        page=page,
        status=filters.status,
        sequence=filters.sequence,
        q=filters.address,
        statuses=list(DeliveryStatus),
        sequences=sorted(services().content.library().sequences),
        failed=queries.deliveries_by_status(session)[DeliveryStatus.FAILED],
        outbox=not services().settings.smtp_url,
    )


@bp.post("/deliveries/<int:delivery_id>/retry")
def retry_one(delivery_id: int) -> ResponseReturnValue:
    svc = services()
    session = db_session()
    delivery = session.get(Delivery, delivery_id) or abort(404)
    try:
        retry_delivery(session, svc.content.library(), delivery, svc.clock())
    except SubscriptionError as error:
        session.rollback()
        flash(f"Not retried: {error}", "error")
    else:
        session.commit()
        flash(
            f"Lesson {delivery.lesson} to {delivery.enrollment.subscriber.email} goes out "
            "with the next dispatch pass.",
            "ok",
        )
    return redirect(_back(url_for("admin.deliveries")))


@bp.post("/deliveries/retry-failed")
def retry_failed() -> ResponseReturnValue:
    svc = services()
    session = db_session()
    library = svc.content.library()
    retried, refused = 0, 0
    for delivery in session.scalars(
        select(Delivery).where(Delivery.status == DeliveryStatus.FAILED)
    ).all():
        try:
            with session.begin_nested():
                retry_delivery(session, library, delivery, svc.clock(), lift_suppression=False)
            retried += 1
        except SubscriptionError:
            refused += 1
    session.commit()
    flash(
        f"{retried} failed deliveries go out with the next pass"
        + (
            f"; {refused} left alone (the address bounced for good, or the reader left): "
            "retry those one by one from the reader's page."
            if refused
            else "."
        ),
        "ok",
    )
    return redirect(url_for("admin.deliveries"))


def _back(fallback: str) -> str:
    return safe_next(request.form.get("back")) if request.form.get("back") else fallback


@bp.get("/outbox")
def outbox() -> ResponseReturnValue:
    settings = services().settings
    if settings.smtp_url:
        return render_template("admin/outbox.html", listing=None, smtp=True)
    listing = mail_folder.listing(
        settings.outbox_dir,
        after=request.args.get("after", ""),
        before=request.args.get("before", ""),
        last=request.args.get("page") == "last",
        size=queries.PAGE,
    )
    return render_template("admin/outbox.html", listing=listing, smtp=False)


@bp.get("/outbox/<name>")
def outbox_message(name: str) -> ResponseReturnValue:
    settings = services().settings
    path = None if settings.smtp_url else mail_folder.message_path(settings.outbox_dir, name)
    if path is None:
        abort(404)
    message = mail_folder.parse(path)
    html, text = mail_folder.bodies(message)
    return render_template(
        "admin/outbox_message.html", name=name, message=message, html=html, text=text
    )


# -- sequences ---------------------------------------------------------------------------------


@bp.get("/sequences")
def sequences() -> ResponseReturnValue:
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
def sequence_action(slug: str, action: str) -> ResponseReturnValue:
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


# -- import and export -------------------------------------------------------------------------


@bp.route("/import", methods=["GET", "POST"])
def import_page() -> ResponseReturnValue:
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
            return redirect(url_for("admin.import_job", job_id=job.id))
    jobs = session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(10)).all()
    return render_template(
        "admin/import.html",
        sequences=sorted(library.sequences),
        form=request.form,
        jobs=jobs,
        segments=session.scalars(select(Segment.name).order_by(Segment.name)).all(),
    )


@bp.get("/import/<int:job_id>")
def import_job(job_id: int) -> ResponseReturnValue:
    """An import's progress; the page reloads itself while the worker is at it."""
    job = db_session().get(ImportJob, job_id) or abort(404)
    return render_template("admin/import_job.html", job=job)


@bp.get("/import/<int:job_id>.json")
def import_job_json(job_id: int) -> ResponseReturnValue:
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


# -- integrations: broadcasts, API keys, webhooks ----------------------------------------------


@bp.get("/integrations")
def integrations() -> ResponseReturnValue:
    """Broadcasts and their progress, the REST API's keys, the webhook endpoints and their
    latest deliveries: what other tools do with drip, and what drip tells them."""
    session = db_session()
    sent = session.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(20)).all()
    hooks_sent = session.execute(
        select(WebhookDelivery, WebhookEndpoint.url)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(30)
    ).all()
    return render_template(
        "admin/integrations.html",
        broadcasts=[(b, broadcast_progress(session, b.id)) for b in sent],
        keys=list_keys(session),
        endpoints=hook_endpoints(session),
        deliveries=hooks_sent,
    )


@bp.post("/api-keys/<int:key_id>/revoke")
def revoke_api_key(key_id: int) -> ResponseReturnValue:
    session = db_session()
    key = session.get(ApiKey, key_id) or abort(404)
    revoke_key(session, key.name, services().clock())
    session.commit()
    flash(f"API key {key.name!r} revoked: requests with it get 401 from now on.", "ok")
    return redirect(url_for("admin.integrations"))


@bp.post("/webhooks/<int:delivery_id>/replay")
def replay_webhook(delivery_id: int) -> ResponseReturnValue:
    session = db_session()
    try:
        replay(session, delivery_id, services().clock())
    except HookError as error:
        abort(404, str(error))
    session.commit()
    flash("The event goes again with the next webhook run (within a few seconds).", "ok")
    return redirect(url_for("admin.integrations"))


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
            return redirect(url_for("admin.import_page"))
    return Response(
        stream_with_context(exports.readers_csv(services().sessions, services().clock(), segment)),
        mimetype="text/csv",
        headers={
            "Content-Disposition": 'attachment; filename="drip-readers.csv"',
            "Cache-Control": "no-store",
        },
    )


# -- operators and the audit log (owners) ------------------------------------------------------


def _role(value: str | None) -> Role | None:
    return Role(value) if value in {r.value for r in Role} else None


def _operators_page(created: tuple[Operator, str] | None = None) -> ResponseReturnValue:
    everyone = operators(db_session())
    now = services().clock()
    return render_template(
        "admin/operators.html",
        operators=everyone,
        sessions=operator_sessions.sessions_of(db_session(), [o.id for o in everyone], now),
        current=g.get("operator_session_id"),
        roles=list(Role),
        created=created,
        now=now,
        when=when,
    )


@bp.get("/operators")
@requires(Role.owner)
def operators_page() -> ResponseReturnValue:
    return _operators_page()


@bp.post("/operators")
def add_operator() -> ResponseReturnValue:
    """drip picks the new operator's password and shows it on this page only (not in a flash,
    which would travel in the session cookie); the owner hands it over."""
    session = db_session()
    role = _role(request.form.get("role"))
    if role is None:
        flash("Not added: choose a role (viewer, editor or owner).", "error")
        return redirect(url_for("admin.operators_page"))
    password = new_password()
    try:
        operator = create_operator(
            session, request.form.get("email", ""), password, services().clock(), role
        )
    except OperatorError as error:
        session.rollback()
        flash(f"Not added: {error}.", "error")
        return redirect(url_for("admin.operators_page"))
    session.commit()
    return _operators_page(created=(operator, password))


def _operator_or_404(session: Session, operator_id: int) -> Operator:
    return session.get(Operator, operator_id) or abort(404)


@bp.post("/operators/<int:operator_id>/role")
def change_role(operator_id: int) -> ResponseReturnValue:
    session = db_session()
    operator = _operator_or_404(session, operator_id)
    role = _role(request.form.get("role"))
    if role is None:
        flash("Role not changed: choose viewer, editor or owner.", "error")
        return redirect(url_for("admin.operators_page"))
    try:
        changed = set_role(session, operator, role)
    except OperatorError as error:
        session.rollback()
        flash(f"Role not changed: {error}.", "error")
        return redirect(url_for("admin.operators_page"))
    session.commit()
    if changed:
        flash(f"{operator.email} is now {role.value}; their sessions ended.", "ok")
    else:
        flash(f"{operator.email} was {role.value} already.", "ok")
    return redirect(url_for("admin.operators_page"))


@bp.post("/operators/<int:operator_id>/remove", endpoint="remove_operator")
def remove_operator_view(operator_id: int) -> ResponseReturnValue:
    session = db_session()
    operator = _operator_or_404(session, operator_id)
    email = operator.email
    try:
        remove_operator(session, operator)
    except OperatorError as error:
        session.rollback()
        flash(f"Not removed: {error}.", "error")
        return redirect(url_for("admin.operators_page"))
    session.commit()
    flash(f"{email} removed; their sessions ended. The audit log keeps what they did.", "ok")
    return redirect(url_for("admin.operators_page"))


@bp.get("/audit")
@requires(Role.owner)
def audit_page() -> ResponseReturnValue:
    """Who did what, newest first, optionally one operator's; content changes as diffs."""
    chosen = request.args.get("operator", "").strip().lower()
    session = db_session()
    return render_template(
        "admin/audit.html",
        page=audit_log.entries_page(session, _cursor(), chosen),
        chosen=chosen,
        known=[o.email for o in operators(session)],
        diff=audit_log.diff,
    )
