"""What the reader-facing pages look up from a request: the client's address and its rate
limits, the course a form names, the enrollment or reader a signed link names, and the kind
page for a link that is forged or too old."""

from __future__ import annotations

from email.utils import parseaddr

from flask import (
    abort,
    render_template,
    request,
)
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from drip.audience.signup import Peer, limits
from drip.content.sequences import Sequence
from drip.mail.links import LinkError
from drip.store.models import Enrollment, EnrollmentStatus, Subscriber
from drip.store.ratelimit import hits
from drip.web.context import db_session, services

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


def sequence_or_404(slug: str) -> Sequence:
    """The sequence whose sign-up form this is. A broken one keeps its form (its sign-ups
    wait in the queue until it is fixed); only one that does not exist is a 404."""
    sequence = services().content.library().for_sign_up(slug)
    if sequence is None:
        abort(404)
    return sequence


def peer(source: str) -> Peer:
    return Peer(ip=client_ip(), user_agent=request.headers.get("User-Agent", ""), source=source)


def sender_address(sequence: Sequence) -> str:
    """The address lessons come from: the one to add to contacts."""
    return parseaddr(sequence.sender or services().settings.sender)[1]


def link_problem(error: LinkError, purpose: str) -> ResponseReturnValue:
    """A forged or expired link: say so kindly, and offer a fresh one by email."""
    return render_template(
        "public/link_problem.html", expired=error.expired, purpose=purpose
    ), 410 if error.expired else 400


def enrollment_from(purpose: str, token: str) -> Enrollment | LinkError:
    try:
        ident = services().links.read(purpose, token)
    except LinkError as error:
        return error
    enrollment = db_session().get(Enrollment, ident)
    if enrollment is None:
        return LinkError("this link belongs to no subscription")
    return enrollment


def subscriber_from(token: str) -> Subscriber | LinkError:
    try:
        ident = services().links.read("preferences", token)
    except LinkError as error:
        return error
    subscriber = db_session().get(Subscriber, ident)
    if subscriber is None:
        return LinkError("this link belongs to no subscription")
    return subscriber
