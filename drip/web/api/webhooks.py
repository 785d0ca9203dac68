"""POST /webhooks/<provider>: bounces and complaints from the mail provider.

Each endpoint authenticates the request its provider's way (drip.deliverability.providers), records
the events (drip.deliverability.bounces.record_bounce, idempotent) and answers 200 at once with what
it did; a refused request gets the status the provider understands and changes nothing.
CSRF does not apply: no browser session posts here (the app factory exempts the blueprint).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from drip.deliverability.bounces import Policy, Report, record_all
from drip.deliverability.providers import (
    drip_reports,
    mailgun_reports,
    postmark_reports,
    sendgrid_reports,
)
from drip.deliverability.ses import ses_reports
from drip.deliverability.webhook_input import Refused, Why
from drip.web.context import db_session, services

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
T = TypeVar("T")

REFUSED_STATUS = {  # why a webhook was refused, as the HTTP status the provider is told
    Why.MALFORMED: 400,
    Why.UNAUTHENTICATED: 401,
    Why.NOT_ACCEPTING: 403,
    Why.REPLAYED: 406,
    Why.MISCONFIGURED: 500,
}


def handle(
    provider: str,
    read: Callable[[Session], T],
    act: Callable[[Session, T], ResponseReturnValue],
) -> ResponseReturnValue:
    """A provider's post: `read` checks it its provider's way (a refusal answers with the
    status the provider understands and changes nothing), `act` does what it brings, and
    the two commit together. A concurrent retry that wrote the same row first is read
    again, once. Serves the bounce webhooks here and the inbound replies'
    (drip.web.api.inbound)."""
    session = db_session()
    for attempt in (1, 2):
        try:
            value = read(session)
        except Refused as refused:
            session.rollback()
            status = REFUSED_STATUS[refused.why]
            log.warning("%s webhook refused (%s): %s", provider, status, refused)
            return jsonify(error=str(refused)), status
        try:
            answer = act(session, value)
            session.commit()
            return answer
        except IntegrityError:  # a concurrent retry recorded the same event: read it again
            session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _record(session: Session, reports: list[Report]) -> ResponseReturnValue:
    svc = services()
    results = record_all(session, reports, svc.clock(), Policy.from_settings(svc.settings))
    return jsonify(
        results=[{"email": r.email, "status": r.status, "outcome": r.outcome} for r in results]
    ), 200


def _handle(provider: str, read: Callable[[Session], list[Report]]) -> ResponseReturnValue:
    return handle(provider, read, _record)


@bp.post("/bounce")
def bounce() -> ResponseReturnValue:
    token = services().settings.webhook_token
    return _handle(
        "drip",
        lambda _s: drip_reports(
            request.get_data(), request.headers.get("Authorization", ""), token
        ),
    )


@bp.post("/ses")
def ses() -> ResponseReturnValue:
    svc = services()

    def read(_session: Session) -> list[Report]:
        reports, subscribe_url = ses_reports(
            request.get_data(),
            svc.settings.sns_certificate,
            svc.clock(),
            svc.settings.sns_topic_arns,
        )
        if subscribe_url:
            log.warning(
                "Amazon SNS asks to confirm the subscription of /webhooks/ses: open "
                "%s once (or paste it in the SNS console's Confirm subscription)",
                subscribe_url,
            )
        return reports

    return _handle("ses", read)


@bp.post("/postmark")
def postmark() -> ResponseReturnValue:
    credentials = services().settings.postmark_auth
    return _handle(
        "postmark",
        lambda _s: postmark_reports(
            request.get_data(), request.headers.get("Authorization", ""), credentials
        ),
    )


@bp.post("/mailgun")
def mailgun() -> ResponseReturnValue:
    svc = services()
    return _handle(
        "mailgun",
        lambda session: mailgun_reports(
            session, request.get_data(), svc.settings.mailgun_signing_key, svc.clock()
        ),
    )


@bp.post("/sendgrid")
def sendgrid() -> ResponseReturnValue:
    svc = services()
    return _handle(
        "sendgrid",
        lambda _s: sendgrid_reports(
            request.get_data(), dict(request.headers), svc.settings.sendgrid_public_key, svc.clock()
        ),
    )
