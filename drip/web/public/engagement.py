"""The two links of the re-permission email ("Still want these?"): `/keep/<token>` and
`/leave/<token>`. Each GET shows a page with one button and changes nothing (scanners open
every link); the POST does it. Neither link expires: "keep them coming" from an email of
any age brings a reader back, paused courses and all."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from drip.audience.engagement import keep
from drip.audience.leaving import unsubscribe
from drip.mail.links import LinkError
from drip.store.models import Enrollment, EnrollmentStatus
from drip.web.context import csrf, db_session, services

bp = Blueprint("engagement", __name__)


def _enrollment(purpose: str, token: str) -> Enrollment | None:
    try:
        ident = services().links.read(purpose, token)
    except LinkError:
        return None
    return db_session().get(Enrollment, ident)


def _broken() -> ResponseReturnValue:
    return render_template(
        "public/problem.html",
        title="This link doesn't work",
        message="It may have been cut short or changed on its way to you, or it belongs to "
        "a subscription that no longer exists. Nothing has changed.",
    ), 400


@bp.route("/keep/<token>", methods=["GET", "POST"])
def keep_page(token: str) -> ResponseReturnValue:
    """ "Keep them coming": the reader wants the emails."""
    found = _enrollment("keep", token)
    if found is None:
        return _broken()
    if found.subscriber.suppressed_at is not None:
        return render_template(
            "public/problem.html",
            title="We can't send to this address",
            message="Mail to it was refused or reported, so we stopped writing to it.",
        ), 409
    if found.status in (EnrollmentStatus.UNSUBSCRIBED, EnrollmentStatus.EXPIRED):
        return render_template(
            "public/problem.html",
            title="You have left this course",
            message="You can rejoin it from the sign-up page or your email preferences.",
        ), 409
    if request.method == "GET":
        return render_template("public/keep.html", email=found.subscriber.email)
    csrf.protect()
    svc = services()
    keep(db_session(), svc.content.library(), found, svc.clock())
    db_session().commit()
    return render_template(
        "public/problem.html",
        title="Thank you: they'll keep coming",
        message="Nothing else to do. You can close this page.",
    )


@bp.route("/leave/<token>", methods=["GET", "POST"])
def leave_page(token: str) -> ResponseReturnValue:
    """ "Stop": no more emails of any course (the reader can rejoin later)."""
    found = _enrollment("leave", token)
    if found is None:
        return _broken()
    if request.method == "GET":
        return render_template("public/leave.html", email=found.subscriber.email)
    csrf.protect()
    svc = services()
    unsubscribe(
        db_session(), found.id, svc.clock(), everything=True, how="“Still want these?”: stop"
    )
    db_session().commit()
    return render_template(
        "public/unsubscribed.html",
        everything=True,
        title="our emails",
        preferences_url=svc.links.preferences_url(found.subscriber_id),
    )
