"""The other links in an email: the lead magnet's download, a tag link, a course offer, a
tracked link and the open pixel, and the sample links of a preview."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
)
from flask.typing import ResponseReturnValue

from drip.audience.clicks import OPEN, from_a_browser, record_click
from drip.audience.subscriptions import (
    SubscriptionError,
    record_event,
)
from drip.audience.tags import add_tags, clean_tag
from drip.content.magnets import magnet_pdf, page_size_for
from drip.dispatch.chaining import accept_offer, open_offer
from drip.mail.links import SAMPLE_KINDS, LinkError
from drip.store.models import Enrollment, EventKind
from drip.web.context import csrf, db_session, services
from drip.web.public.lookups import enrollment_from, link_problem

bp = Blueprint("links", __name__)


@bp.get("/magnet/<token>")
def magnet(token: str) -> ResponseReturnValue:
    """The lead-magnet PDF, made for this reader; each download goes on their timeline."""
    found = enrollment_from("magnet", token)
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
    record_event(session, found, EventKind.DOWNLOAD, svc.clock(), sequence.lead_magnet.source.name)
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


@bp.route("/t/<token>", methods=["GET", "POST"])
def tag_link(token: str) -> ResponseReturnValue:
    """A lesson's "yes, that's me" link ({{ tag_link("has-dates") }}): the GET shows one
    button (a scanner opening it tags nobody), the POST tags the reader."""
    svc = services()
    try:
        enrollment_id, tag = svc.links.read_tracked("tag", token)
        tag = clean_tag(str(tag))
    except (LinkError, ValueError):
        return _broken()
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
        return _broken()
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


def _broken() -> ResponseReturnValue:
    """A tracked or tag link that does not verify: cut or changed on its way."""
    return render_template(
        "public/problem.html",
        title="This link is broken",
        message="It may have been cut or changed on its way to you. "
        "Please open it again from the email.",
    ), 400
