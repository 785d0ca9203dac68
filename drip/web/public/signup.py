"""The sign-up form: the page, its post, "check your inbox", the author's photo, and a
fresh confirmation link for an address that asks again. An answer never tells whether an
address is already subscribed."""

from __future__ import annotations

import dataclasses

from flask import (
    Blueprint,
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

from drip.audience.signup import SignUp, SignUpRefused
from drip.audience.signup_queue import accept_sign_up
from drip.audience.subscriptions import (
    SubscriptionError,
    normalize_email,
    resend_confirmation,
)
from drip.content.authors import PHOTO_TYPES
from drip.content.embed import EMBED_FIELD, embed_tags
from drip.content.fetch_rule import inside
from drip.content.sequences import Sequence
from drip.dispatch.fresh_links import request_magnet_link
from drip.store.models import Subscriber
from drip.web.context import csrf, db_session, services
from drip.web.public.lookups import client_ip, peer, sequence_or_404, within_limits

bp = Blueprint("signup", __name__)

HONEYPOT = "website"  # hidden from people; bots that fill every field give themselves away


def _form_from_request(sequence: Sequence) -> SignUp:
    """The posted fields. "Use this address" (after "did you mean") replaces the address it
    was offered for; if the reader retyped the address meanwhile, what they typed wins.
    Read once into a dict: a field a form leaves out costs werkzeug an exception per look-up."""
    posted = request.form.to_dict()  # the first value of each field, as .get gives
    email = posted.get("email", "")
    offered_for, meant = posted.get("suggested_for"), posted.get("use_email")
    if meant and offered_for == email:
        email = meant
    return SignUp(
        email=email,
        first_name=posted.get("first_name", ""),
        timezone=posted.get("timezone", ""),
        consent=bool(posted.get("consent")),
        honeypot=posted.get(HONEYPOT, ""),
        fields={name: posted.get(name, "") for name in sequence.signup_fields},
        email_checked=bool(posted.get("email_checked")),
    )


SIGNED_UP = "signed_up"  # the session's note of the address a sign-up was sent to


def _signed_up_as(slug: str) -> dict[str, str]:
    """What this browser last signed up to `slug` with (email, first name), or nothing."""
    found = browser_session.get(SIGNED_UP)
    if not isinstance(found, dict) or found.get("slug") != slug:
        return {}
    return {key: str(found.get(key) or "") for key in ("email", "first_name")}


@bp.get("/subscribe/<slug>")
def page(slug: str) -> ResponseReturnValue:
    """The form; `?change=address` (the "wrong address? fix it" link) fills in what this
    browser signed up with, so only the address needs retyping."""
    sequence = sequence_or_404(slug)
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
    named = sequence_or_404(slug).author.photo_file
    photo = inside(named, services().settings.sequences_dir) if named is not None else None
    if photo is None:  # gone, or swapped for a link out of the folder since it was checked
        abort(404)
    return send_file(photo, mimetype=PHOTO_TYPES[photo.suffix.lower()], max_age=3600)


@bp.post("/subscribe/<slug>")
def post(slug: str) -> ResponseReturnValue:
    """The page's form and the embedded form (see drip.content.embed) both post here.

    Exempt from the global CSRF check (in create_app): a post carries either our page's CSRF
    token, checked here, or an embedded form's signed token, which a cross-origin form can
    carry where a session-bound CSRF token cannot.
    """
    sequence = sequence_or_404(slug)
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
            svc.engine, sequence, form, peer(source), svc.clock(), svc.settings, svc.resolver
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
    return redirect(url_for("public.signup.check_inbox", slug=slug), code=303)


@bp.get("/subscribe/<slug>/thanks")
def check_inbox(slug: str) -> ResponseReturnValue:
    return render_template(
        "public/check_inbox.html",
        sequence=sequence_or_404(slug),
        email=_signed_up_as(slug).get("email", ""),
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
