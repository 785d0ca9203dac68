"""What other tools do with drip: broadcasts' progress, API keys, outgoing webhooks."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from drip.dispatch.broadcasts import progress as broadcast_progress
from drip.integrations import api_keys
from drip.integrations.api_keys import list_keys
from drip.integrations.hooks import HookError, replay
from drip.integrations.hooks import endpoints as hook_endpoints
from drip.store.models import (
    ApiKey,
    Broadcast,
    WebhookDelivery,
    WebhookEndpoint,
)
from drip.web.context import db_session, services

bp = Blueprint("integrations", __name__)


@bp.get("/integrations")
def index() -> ResponseReturnValue:
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
def revoke_key(key_id: int) -> ResponseReturnValue:
    session = db_session()
    key = session.get(ApiKey, key_id) or abort(404)
    api_keys.revoke_key(session, key.name, services().clock())
    session.commit()
    flash(f"API key {key.name!r} revoked: requests with it get 401 from now on.", "ok")
    return redirect(url_for("admin.integrations.index"))


@bp.post("/webhooks/<int:delivery_id>/replay")
def replay_webhook(delivery_id: int) -> ResponseReturnValue:
    session = db_session()
    try:
        replay(session, delivery_id, services().clock())
    except HookError as error:
        abort(404, str(error))
    session.commit()
    flash("The event goes again with the next webhook run (within a few seconds).", "ok")
    return redirect(url_for("admin.integrations.index"))
