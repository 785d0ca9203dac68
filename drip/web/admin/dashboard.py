"""The dashboard at /admin: is sending healthy, what went out lately, what needs a hand."""

from __future__ import annotations

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    url_for,
)
from flask.typing import ResponseReturnValue

from drip.audience.engagement import shares as engagement_shares
from drip.deliverability import guardrails
from drip.deliverability.bounces import Policy
from drip.deliverability.sending_pause import (
    daily_rates,
    rates,
    resume_sending,
    sending_paused,
    unverified_reports,
)
from drip.ops.course_problems import course_problems
from drip.ops.stats import (
    axis_ticks,
    daily,
    funnel,
    overview,
    when,
)
from drip.store import queries
from drip.store.filters import Filters
from drip.store.queries import Cursor, paused_sequences
from drip.web.context import db_session, services

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
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
def resume() -> ResponseReturnValue:
    session = db_session()
    if resume_sending(session, services().clock(), g.operator.email):
        session.commit()
        flash("Sending resumed for every sequence.", "ok")
    else:
        flash("Sending was not paused.", "ok")
    return redirect(url_for("admin.dashboard.index"))
