"""What readers see: the sign-up page and the pages behind the links in every email.

Handlers stay thin: they read the request, call the plain functions of drip.audience.subscriptions,
commit, and render. Two rules hold throughout: an answer never tells whether an address is
already subscribed, and a GET never unsubscribes (mail scanners open links).
"""

from __future__ import annotations

import dataclasses
import logging
from email.utils import parseaddr
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask import session as browser_session  # the signed cookie; `session` is the database's
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.audience.leaving import unsubscribe
from drip.audience.signup import Peer, SignUp, SignUpRefused, accept_sign_up, limits
from drip.audience.subscriptions import (
    Consent,
    SubscriptionError,
    confirm,
    normalize_email,
    record_event,
    rejoin,
    resend_confirmation,
)
from drip.audience.tags import add_tags, clean_tag
from drip.content.authors import PHOTO_TYPES
from drip.content.embed import EMBED_FIELD, embed_tags
from drip.content.fetch_rule import inside
from drip.content.magnets import magnet_pdf, page_size_for
from drip.content.sequences import Sequence
from drip.dispatch.broadcasts import stop_broadcasts
from drip.dispatch.chaining import accept_offer, open_offer
from drip.dispatch.fresh_links import request_magnet_link
from drip.mail.clicks import OPEN, from_a_browser, record_click
from drip.mail.links import SAMPLE_KINDS, LinkError
from drip.store.models import Enrollment, EnrollmentStatus, Subscriber
from drip.store.ratelimit import hits
from drip.web.context import csrf, db_session, services

log = logging.getLogger(__name__)

bp = Blueprint("public", __name__)

HONEYPOT = "website"  # hidden from people; bots that fill every field give themselves away
ONE_CLICK = "One-Click"
MAX_ID = 2**31  # ids are 32-bit integers on PostgreSQL
LEFT_STATUSES = (EnrollmentStatus.UNSUBSCRIBED, EnrollmentStatus.EXPIRED)


def client_ip() -> str:
    """The peer address. Behind a proxy, deploy with werkzeug's ProxyFix so this is the
    reader's address, not the proxy's (else one limit would cover every reader)."""
    return request.remote_addr or "unknown"


def within_limits(session: Session, kind: str, ip: str, address: str | None) -> bool:
    """Count the attempt per IP and, once the address is known, per address."""
    svc = services()
    return all(hits(session, limits(kind, ip, address, svc.settings), svc.clock()).values())


def _sequence_or_404(slug: str) -> Sequence:
    """The sequence whose sign-up form this is. A broken one keeps its form (its sign-ups
    wait in the queue until it is fixed); only one that does not exist is a 404."""
    sequence = services().content.library().for_sign_up(slug)
    if sequence is None:
        abort(404)
    return sequence


def peer(source: str) -> Peer:
    return Peer(ip=client_ip(), user_agent=request.headers.get("User-Agent", ""), source=source)


def _form_from_request(sequence: Sequence) -> SignUp:
    """The posted fields. "Use this address" (after "did you mean") replaces the address it
    was offered for; if the reader retyped the address meanwhile, what they typed wins."""
    email = request.form.get("email", "")
    offered_for, meant = request.form.get("suggested_for"), request.form.get("use_email")
    if meant and offered_for == email:
        email = meant
    return SignUp(
        email=email,
        first_name=request.form.get("first_name", ""),
        timezone=request.form.get("timezone", ""),
        consent=bool(request.form.get("consent")),
        honeypot=request.form.get(HONEYPOT, ""),
        fields={name: request.form.get(name, "") for name in sequence.signup_fields},
        email_checked=bool(request.form.get("email_checked")),
    )


SIGNED_UP = "signed_up"  # the session's note of the address a sign-up was sent to


def _signed_up_as(slug: str) -> dict[str, str]:
    """What this browser last signed up to `slug` with (email, first name), or nothing."""
    found = browser_session.get(SIGNED_UP)
    if not isinstance(found, dict) or found.get("slug") != slug:
        return {}
    return {key: str(found.get(key) or "") for key in ("email", "first_name")}


@bp.get("/subscribe/<slug>")
def signup_page(slug: str) -> ResponseReturnValue:
    """The form; `?change=address` (the "wrong address? fix it" link) fills in what this
    browser signed up with, so only the address needs retyping."""
    sequence = _sequence_or_404(slug)
    values = _signed_up_as(slug) if request.args.get("change") == "address" else {}
    return render_template(
        "public/subscribe.html",
        sequence=sequence,
        values=values,
        error=None,
        error_field=None,
    )


@bp.get("/subscribe/<slug>/author-photo")
def author_photo(slug: str) -> ResponseReturnValue:
    """The author's picture when it is a file in the sequences folder (drip check made sure
    it is a picture there); an https photo is linked directly."""
    named = _sequence_or_404(slug).author.photo_file
    photo = inside(named, services().settings.sequences_dir) if named is not None else None
    if photo is None:  # gone, or swapped for a link out of the folder since it was checked
        abort(404)
    return send_file(photo, mimetype=PHOTO_TYPES[photo.suffix.lower()], max_age=3600)


@bp.post("/subscribe/<slug>")
def signup_post(slug: str) -> ResponseReturnValue:
    """The page's form and the embedded form (see drip.content.embed) both post here.

    Exempt from the global CSRF check (in create_app): a post carries either our page's CSRF
    token, checked here, or an embedded form's signed token, which a cross-origin form can
    carry where a session-bound CSRF token cannot.
    """
    sequence = _sequence_or_404(slug)
    embed = request.form.get(EMBED_FIELD)
    tags: tuple[str, ...] = ()
    if embed is not None:
        settings = services().settings
        found_tags = embed_tags(settings.secret_key, slug, embed, settings.secret_key_fallbacks)
        if found_tags is None:
            return render_template(
                "public/problem.html",
                sequence=sequence,
                title="This form is out of date",
                message="Please sign up on our own page instead.",
                signup=True,
            ), 400
        tags = found_tags
        source = f"embedded form ({request.headers.get('Origin', 'unknown origin')[:100]})"
    else:
        csrf.protect()
        source = f"sign-up page /subscribe/{slug}"
    form = dataclasses.replace(_form_from_request(sequence), tags=tags)
    try:
        svc = services()
        accept_sign_up(
            db_session(), sequence, form, peer(source), svc.clock(), svc.settings, svc.resolver
        )
    except SignUpRefused as refused:
        return render_template(
            "public/subscribe.html",
            sequence=sequence,
            values={**request.form, "email": form.email},
            error=str(refused),
            error_field=refused.field,
            suggestion=refused.suggestion,
        ), (429 if refused.throttled else 400)
    # Kept in this browser's session, not the URL: the next page shows the address as typed
    # ("wrong address? fix it"), and an address in a URL would end up in logs and history.
    browser_session[SIGNED_UP] = {
        "slug": slug,
        "email": form.email.strip()[:254],
        "first_name": form.first_name.strip()[:200],
    }
    return redirect(url_for("public.check_inbox", slug=slug), code=303)


@bp.get("/subscribe/<slug>/thanks")
def check_inbox(slug: str) -> ResponseReturnValue:
    return render_template(
        "public/check_inbox.html",
        sequence=_sequence_or_404(slug),
        email=_signed_up_as(slug).get("email", ""),
    )


def sender_address(sequence: Sequence) -> str:
    """The address lessons come from: the one to add to contacts."""
    return parseaddr(sequence.sender or services().settings.sender)[1]


def link_problem(error: LinkError, purpose: str) -> ResponseReturnValue:
    """A forged or expired link: say so kindly, and offer a fresh one by email."""
    return render_template(
        "public/link_problem.html", expired=error.expired, purpose=purpose
    ), 410 if error.expired else 400


def _enrollment_from(purpose: str, token: str) -> Enrollment | LinkError:
    try:
        ident = services().links.read(purpose, token)
    except LinkError as error:
        return error
    enrollment = db_session().get(Enrollment, ident)
    if enrollment is None:
        return LinkError("this link belongs to no subscription")
    return enrollment


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> ResponseReturnValue:
    """A page with one button. Opening the link changes nothing: mail scanners open every
    link in a message, and a sign-up nobody made must not be confirmed by one."""
    found = _enrollment_from("confirm", token)
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
    found = _enrollment_from("confirm", token)
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
    found = _enrollment_from("unsubscribe", token)
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
    found = _enrollment_from("unsubscribe", token)
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


def _subscriber_from(token: str) -> Subscriber | LinkError:
    try:
        ident = services().links.read("preferences", token)
    except LinkError as error:
        return error
    subscriber = db_session().get(Subscriber, ident)
    if subscriber is None:
        return LinkError("this link belongs to no subscription")
    return subscriber


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
    found = _subscriber_from(token)
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


@bp.get("/magnet/<token>")
def magnet(token: str) -> ResponseReturnValue:
    """The lead-magnet PDF, made for this reader; each download goes on their timeline."""
    found = _enrollment_from("magnet", token)
    if isinstance(found, LinkError):
        return link_problem(found, "magnet")
    svc = services()
    sequence = svc.content.library().get(found.sequence)
    if sequence is None or sequence.lead_magnet is None:
        return render_template(
            "public/problem.html",
            title="This guide is not available",
            message="The course it belonged to has changed. Sorry!",
        ), 404
    pdf = magnet_pdf(
        svc.settings,
        sequence,
        dict(found.subscriber.attributes or {}),
        page_size=page_size_for(found.subscriber.timezone),
        today=svc.clock().date(),
    )
    session = db_session()
    record_event(session, found, "download", svc.clock(), sequence.lead_magnet.source.name)
    if from_a_browser(request.headers.get("User-Agent", "")):  # a person, not a scanner
        add_tags(
            session,
            found.subscriber,
            [f"pdf-{sequence.slug}"[:40]],
            svc.clock(),
            "downloaded the PDF",
            svc.content.library(),
        )
    session.commit()
    return Response(
        pdf,
        200,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{sequence.slug}.pdf"',
            "Cache-Control": "private, no-store",
        },
    )


@bp.post("/resend")
def resend() -> ResponseReturnValue:
    """A fresh confirmation or download link by email. The answer is the same whether or not
    the address is known, so nobody can use this form to learn who signed up."""
    purpose = request.form.get("purpose", "")
    if purpose not in ("confirm", "magnet"):
        abort(400)
    svc = services()
    session = db_session()
    ip = client_ip()
    try:
        address = normalize_email(request.form.get("email", ""))
    except SubscriptionError:
        within_limits(session, "resend", ip, None)
        session.commit()
        return render_template(
            "public/link_problem.html",
            purpose=purpose,
            expired=True,
            error="That doesn't look like an email address.",
        ), 400
    if not within_limits(session, "resend", ip, address):
        session.commit()
        return render_template(
            "public/problem.html",
            title="Please wait a little",
            message="Too many requests for fresh links. Please try again in an hour.",
        ), 429
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is not None:
        for enrollment in subscriber.enrollments:
            if purpose == "confirm":
                resend_confirmation(session, enrollment, svc.clock())
            else:
                request_magnet_link(session, enrollment, svc.clock())
    session.commit()
    return render_template("public/resent.html", purpose=purpose)


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


@bp.route("/t/<token>", methods=["GET", "POST"])
def tag_link(token: str) -> ResponseReturnValue:
    """A lesson's "yes, that's me" link ({{ tag_link("has-dates") }}): the GET shows one
    button (a scanner opening it tags nobody), the POST tags the reader."""
    svc = services()
    try:
        enrollment_id, tag = svc.links.read_tracked("tag", token)
        tag = clean_tag(str(tag))
    except (LinkError, ValueError):
        return render_template(
            "public/problem.html",
            title="This link is broken",
            message="It may have been cut or changed on its way to you. "
            "Please open it again from the email.",
        ), 400
    session = db_session()
    found = session.get(Enrollment, int(enrollment_id))
    if found is None:
        return render_template(
            "public/problem.html",
            title="This link is not valid any more",
            message="It belongs to no subscription.",
        ), 404
    if request.method == "GET":
        return render_template("public/tag.html", tag=tag)
    csrf.protect()
    add_tags(
        session,
        found.subscriber,
        [tag],
        svc.clock(),
        f"link in {found.sequence}",
        svc.content.library(),
    )
    session.commit()
    return render_template(
        "public/problem.html", title="Thank you, noted", message="You can close this page."
    )


@bp.route("/offer/<token>", methods=["GET", "POST"])
def offer(token: str) -> ResponseReturnValue:
    """The "yes, send me that course" link of an offer email: the GET shows the button (a
    scanner opening the link starts nothing), the POST starts the course, once."""
    svc = services()
    try:
        enrollment_id = svc.links.read("offer", token)
    except LinkError as error:
        return link_problem(error, "offer")
    library = svc.content.library()
    session = db_session()
    try:
        found = open_offer(session, library, enrollment_id)
    except SubscriptionError:
        return render_template(
            "public/problem.html",
            title="This offer is not open any more",
            message="The course it offered has changed. Sorry!",
        ), 404
    target = found.target
    if request.method == "GET":
        return render_template(
            "public/offer.html",
            sequence=target,
            finished=found.finished,
            email=found.enrollment.subscriber.email,
        )
    csrf.protect()
    try:
        accept_offer(session, library, enrollment_id, svc.clock())
    except SubscriptionError as error:
        session.rollback()
        return render_template(
            "public/problem.html", title="We can't start this course now", message=str(error)
        ), 409
    session.commit()
    return render_template(
        "public/problem.html",
        title="You're in!",
        message=f"“{target.title}” starts now: the first email is on its way.",
    )


@bp.get("/l/<token>")
def tracked_link(token: str) -> ResponseReturnValue:
    """A tracked link in a lesson: count the click, then on to where it leads. A forged or
    cut token leads nowhere: an open redirect would lend our domain to phishing."""
    svc = services()
    try:
        enrollment_id, lesson, index, target = svc.links.read_tracked("track", token)
        if not isinstance(target, str) or urlsplit(target).scheme not in ("http", "https"):
            raise LinkError("this link is broken")
    except (LinkError, ValueError):
        return render_template(
            "public/problem.html",
            title="This link is broken",
            message="It may have been cut or changed on its way to you. "
            "Please open it again from the email.",
        ), 400
    session = db_session()
    destination = record_click(
        session,
        svc.content.library(),
        int(enrollment_id),
        str(lesson),
        int(index),
        target,
        svc.clock(),
        user_agent=request.headers.get("User-Agent", ""),
        accept=request.headers.get("Accept", ""),
    )
    session.commit()
    return redirect(destination or target, code=302)


PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)


@bp.get("/o/<token>.gif")
def open_pixel(token: str) -> ResponseReturnValue:
    """The open pixel of a sequence with `track_opens: true`."""
    svc = services()
    try:
        enrollment_id, lesson = svc.links.read_tracked("open", token)
        session = db_session()
        record_click(
            session,
            svc.content.library(),
            int(enrollment_id),
            str(lesson),
            OPEN,
            "(open)",
            svc.clock(),
            user_agent=request.headers.get("User-Agent", ""),
            accept="text/html",
        )
        session.commit()
    except (LinkError, ValueError):
        pass  # a broken pixel shows nothing either way
    return Response(PIXEL, 200, mimetype="image/gif", headers={"Cache-Control": "no-store"})


@bp.get("/sample/<kind>/<purpose>")
def sample_link(kind: str, purpose: str) -> ResponseReturnValue:
    """Where every link of a preview or a test send leads: it belongs to no reader."""
    if kind not in SAMPLE_KINDS:
        abort(404)
    what = "a preview" if kind == "preview" else "a test send"
    return render_template(
        "public/problem.html",
        title=f"This link is from {what}",
        message="It belongs to no reader, so it does nothing: in a real "
        f"email it would open the {purpose.replace('-', ' ')} "
        "page of the reader it was sent to.",
    )


@bp.errorhandler(400)
def bad_request(_error: Exception) -> ResponseReturnValue:
    """Mostly a form posted without its security token (a page left open very long, or a
    post from another site): say what to do, change nothing."""
    return render_template(
        "public/problem.html",
        title="That didn't go through",
        message="The form was missing something we need to accept it. "
        "Please go back, reload the page and try again.",
    ), 400


@bp.errorhandler(404)
def not_found(_error: Exception) -> ResponseReturnValue:
    return render_template(
        "public/problem.html", title="Page not found", message="There is nothing at this address."
    ), 404
