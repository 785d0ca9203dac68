"""The reader's consent, from the links in every email: confirm, unsubscribe (one click, RFC
8058), the preferences page, and no more broadcasts. A GET shows a button and changes nothing:
mail scanners open every link."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    render_template,
    request,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from drip.audience.leaving import unsubscribe
from drip.audience.subscriptions import (
    Consent,
    SubscriptionError,
    confirm,
    rejoin,
)
from drip.dispatch.broadcasts import stop_broadcasts
from drip.mail.links import LinkError
from drip.store.models import Enrollment, EnrollmentStatus, Subscriber
from drip.web.context import csrf, db_session, services
from drip.web.public.lookups import (
    LEFT_STATUSES,
    MAX_ID,
    client_ip,
    enrollment_from,
    link_problem,
    sender_address,
    subscriber_from,
)

bp = Blueprint("consent", __name__)

ONE_CLICK = "One-Click"


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> ResponseReturnValue:
    """A page with one button. Opening the link changes nothing: mail scanners open every
    link in a message, and a sign-up nobody made must not be confirmed by one."""
    found = enrollment_from("confirm", token)
    if isinstance(found, LinkError):
        return link_problem(found, "confirm")
    sequence = services().content.library().for_sign_up(found.sequence)
    return render_template(
        "public/confirm.html",
        enrollment=found,
        sequence=sequence,
        title=sequence.title if sequence else found.sequence,
    )


@bp.post("/confirm/<token>")
def confirm_post(token: str) -> ResponseReturnValue:
    """The button: the course starts, and the dispatcher sends the welcome lesson."""
    found = enrollment_from("confirm", token)
    if isinstance(found, LinkError):
        return link_problem(found, "confirm")
    svc = services()
    session = db_session()
    try:
        enrollment = confirm(session, svc.content.library(), found.id, svc.clock())
    except SubscriptionError as error:  # the sequence is gone or broken
        return render_template(
            "public/problem.html", title="We can't start this course now", message=str(error)
        ), 503
    session.commit()
    sequence = svc.content.library().get(enrollment.sequence)
    return render_template(
        "public/confirmed.html",
        enrollment=enrollment,
        sequence=sequence,
        preferences_url=svc.links.preferences_url(enrollment.subscriber_id),
        # The PDF they came for, right here (the same signed link the welcome lesson has),
        # rather than only in an email that may take minutes or land in spam.
        magnet_url=svc.links.magnet_url(enrollment.id)
        if sequence is not None and sequence.lead_magnet is not None
        else None,
        sender=sender_address(sequence) if sequence is not None else "",
        continue_to=_continue_to(sequence.after_confirm_url) if sequence is not None else None,
    )


def _continue_to(url: str) -> tuple[str, str] | None:
    """after_confirm_url and the name its link shows (the site's host, without www.)."""
    if not url:
        return None
    return url, (urlsplit(url).hostname or url).removeprefix("www.")


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> ResponseReturnValue:
    """Only a page with two buttons: a GET must never unsubscribe."""
    found = enrollment_from("unsubscribe", token)
    if isinstance(found, LinkError):
        return link_problem(found, "unsubscribe")
    sequence = services().content.library().get(found.sequence)
    return render_template(
        "public/unsubscribe.html",
        enrollment=found,
        sequence=sequence,
        title=sequence.title if sequence else found.sequence,
    )


@bp.post("/unsubscribe/<token>")
def unsubscribe_post(token: str) -> ResponseReturnValue:
    """The page's two buttons (CSRF-checked here) and RFC 8058 one-click posts from mail
    providers, which have no session to hold a CSRF token (exempted in create_app)."""
    one_click = request.form.get("List-Unsubscribe") == ONE_CLICK
    found = enrollment_from("unsubscribe", token)
    if isinstance(found, LinkError):
        if one_click:
            return Response("This unsubscribe link is not valid.\n", 400, mimetype="text/plain")
        return link_problem(found, "unsubscribe")
    svc = services()
    session = db_session()
    if one_click:
        # RFC 8058: 200, no redirect, no cookie, no login (the session is never touched)
        unsubscribe(session, found.id, svc.clock(), how="one-click (RFC 8058)")
        session.commit()
        return Response("You are unsubscribed.\n", 200, mimetype="text/plain")
    csrf.protect()
    everything = request.form.get("scope") == "everything"
    unsubscribe(session, found.id, svc.clock(), everything=everything, how="unsubscribe page")
    session.commit()
    sequence = svc.content.library().get(found.sequence)
    return render_template(
        "public/unsubscribed.html",
        everything=everything,
        title=sequence.title if sequence else found.sequence,
        preferences_url=svc.links.preferences_url(found.subscriber_id),
    )


def _courses(subscriber: Subscriber) -> list[tuple[Enrollment, str]]:
    library = services().content.library()
    rows = db_session().scalars(
        select(Enrollment).where(Enrollment.subscriber_id == subscriber.id).order_by(Enrollment.id)
    )
    courses = []
    for enrollment in rows:
        sequence = library.get(enrollment.sequence)
        courses.append((enrollment, sequence.title if sequence else enrollment.sequence))
    return courses


@bp.route("/preferences/<token>", methods=["GET", "POST"])
def preferences(token: str) -> ResponseReturnValue:
    """Every course of this reader, each with a leave or rejoin button (forms with CSRF)."""
    found = subscriber_from(token)
    if isinstance(found, LinkError):
        return link_problem(found, "preferences")
    notice = None
    if request.method == "POST":
        notice = _change_course(found)
    return render_template(
        "public/preferences.html",
        subscriber=found,
        courses=_courses(found),
        notice=notice,
        left=LEFT_STATUSES,
        library=services().content.library(),
    )


def _change_course(subscriber: Subscriber) -> str:
    svc = services()
    session = db_session()
    try:
        enrollment_id = int(request.form.get("enrollment", ""))
    except ValueError:
        abort(400)
    if not 0 < enrollment_id < MAX_ID:
        abort(400)  # past any row id: the database's integer would overflow
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None or enrollment.subscriber_id != subscriber.id:
        abort(400)  # a form edited to reach someone else's course
    library = svc.content.library()
    sequence = library.get(enrollment.sequence)
    title = sequence.title if sequence else enrollment.sequence
    if request.form.get("action") == "leave":
        unsubscribe(session, enrollment.id, svc.clock(), how="preferences page")
        session.commit()
        return f"You left “{title}”."
    if request.form.get("action") == "rejoin" and sequence is not None:
        try:
            rejoin(
                session,
                library,
                enrollment,
                svc.clock(),
                consent=Consent(
                    source="preferences page",
                    text=sequence.consent,
                    ip=client_ip(),
                    user_agent=request.headers.get("User-Agent", "")[:500],
                ),
            )
        except SubscriptionError as error:
            session.rollback()
            return str(error)
        session.commit()
        if enrollment.status == EnrollmentStatus.PENDING:
            return f"Please confirm “{title}” with the link we are emailing you."
        return f"Welcome back to “{title}”."
    abort(400)


@bp.route("/stop/<token>", methods=["GET", "POST"])
def stop_broadcasts_page(token: str) -> ResponseReturnValue:
    """A broadcast's unsubscribe link: the page offers "no more broadcasts" or "everything";
    an RFC 8058 one-click POST means "no more broadcasts"."""
    svc = services()
    try:
        recipient_id = svc.links.read("broadcast", token)
    except LinkError as error:
        if request.form.get("List-Unsubscribe") == ONE_CLICK:
            return Response("This unsubscribe link is not valid.\n", 400, mimetype="text/plain")
        return link_problem(error, "unsubscribe")
    session = db_session()
    if request.method == "GET":
        return render_template("public/stop.html")
    if request.form.get("List-Unsubscribe") == ONE_CLICK:
        stop_broadcasts(
            session,
            recipient_id,
            svc.clock(),
            everything=False,
            how="one-click (RFC 8058), broadcast",
        )
        session.commit()
        return Response("You will get no more broadcasts.\n", 200, mimetype="text/plain")
    csrf.protect()
    everything = request.form.get("scope") == "everything"
    subscriber = stop_broadcasts(
        session, recipient_id, svc.clock(), everything=everything, how="broadcast unsubscribe page"
    )
    session.commit()
    return render_template(
        "public/unsubscribed.html",
        everything=everything,
        title="our news emails",
        preferences_url=svc.links.preferences_url(subscriber.id) if subscriber else None,
    )
