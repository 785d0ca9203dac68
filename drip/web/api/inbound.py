"""POST /webhooks/<provider>/inbound: readers' replies from the providers' inbound webhooks.

Each endpoint checks the request its provider's way (drip.replies.inbound), takes the reply
in (drip.replies.matching) and answers 200 with what became of it; a refused request gets
the status the provider understands and changes nothing. CSRF does not apply: providers
sign their posts (the app factory exempts the blueprint).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from drip.replies.inbound import Read, mailgun_inbound, postmark_inbound, ses_inbound
from drip.replies.matching import ReplyPolicy, take
from drip.web.api.webhooks import handle
from drip.web.context import services

log = logging.getLogger(__name__)

bp = Blueprint("inbound", __name__, url_prefix="/webhooks")


def _take(session: Session, read: Read) -> ResponseReturnValue:
    """What became of one reply (nothing to take in: an SNS confirmation)."""
    incoming, raw = read
    if incoming is None:
        return jsonify(status="ignored"), 200
    svc = services()
    library, policy = svc.content.library(), ReplyPolicy.from_settings(svc.settings)
    taken = take(session, library, incoming, svc.clock(), policy, raw=raw)
    return jsonify(status=taken.status, detail=taken.detail), 200


def _handle(provider: str, read: Callable[[Session], Read]) -> ResponseReturnValue:
    return handle(f"{provider} inbound", read, _take)


@bp.post("/postmark/inbound")
def postmark() -> ResponseReturnValue:
    credentials = services().settings.postmark_auth
    return _handle(
        "postmark",
        lambda _s: postmark_inbound(
            request.get_data(), request.headers.get("Authorization", ""), credentials
        ),
    )


@bp.post("/mailgun/inbound")
@bp.post("/mailgun/inbound/mime")
def mailgun() -> ResponseReturnValue:
    svc = services()
    return _handle(
        "mailgun",
        lambda session: mailgun_inbound(
            session, request.form.to_dict(), svc.settings.mailgun_signing_key, svc.clock()
        ),
    )


@bp.post("/ses/inbound")
def ses() -> ResponseReturnValue:
    svc = services()
    return _handle(
        "ses",
        lambda _s: ses_inbound(
            request.get_data(),
            svc.settings.sns_certificate,
            svc.clock(),
            svc.settings.sns_topic_arns,
        ),
    )
