"""The delivery log with its retry buttons, and the local outbox's messages."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from drip.audience.controls import retry_delivery
from drip.audience.subscriptions import SubscriptionError
from drip.mail import outbox as mail_folder
from drip.store import queries
from drip.store.models import (
    Delivery,
    DeliveryStatus,
)
from drip.web.admin.reader_filters import cursor as _cursor
from drip.web.admin.reader_filters import filters as _filters
from drip.web.admin.redirects import back
from drip.web.context import db_session, services

bp = Blueprint("deliveries", __name__)


@bp.get("/deliveries")
def index() -> ResponseReturnValue:
    filters = _filters()
    session = db_session()
    page = queries.deliveries_page(session, _cursor(), filters)
    return render_template(
        "admin/deliveries.html",
        page=page,
        status=filters.status,
        sequence=filters.sequence,
        q=filters.address,
        statuses=list(DeliveryStatus),
        sequences=sorted(services().content.library().sequences),
        failed=queries.deliveries_by_status(session)[DeliveryStatus.FAILED],
        outbox=not services().settings.smtp_url,
    )


@bp.post("/deliveries/<int:delivery_id>/retry")
def retry_one(delivery_id: int) -> ResponseReturnValue:
    svc = services()
    session = db_session()
    delivery = session.get(Delivery, delivery_id) or abort(404)
    try:
        retry_delivery(session, svc.content.library(), delivery, svc.clock())
    except SubscriptionError as error:
        session.rollback()
        flash(f"Not retried: {error}", "error")
    else:
        session.commit()
        flash(
            f"Lesson {delivery.lesson} to {delivery.enrollment.subscriber.email} goes out "
            "with the next dispatch pass.",
            "ok",
        )
    return redirect(back(url_for("admin.deliveries.index")))


@bp.post("/deliveries/retry-failed")
def retry_failed() -> ResponseReturnValue:
    svc = services()
    session = db_session()
    library = svc.content.library()
    retried, refused = 0, 0
    for delivery in session.scalars(
        select(Delivery).where(Delivery.status == DeliveryStatus.FAILED)
    ).all():
        try:
            with session.begin_nested():
                retry_delivery(session, library, delivery, svc.clock(), lift_suppression=False)
            retried += 1
        except SubscriptionError:
            refused += 1
    session.commit()
    flash(
        f"{retried} failed deliveries go out with the next pass"
        + (
            f"; {refused} left alone (the address bounced for good, or the reader left): "
            "retry those one by one from the reader's page."
            if refused
            else "."
        ),
        "ok",
    )
    return redirect(url_for("admin.deliveries.index"))


@bp.get("/outbox")
def outbox() -> ResponseReturnValue:
    settings = services().settings
    if settings.smtp_url:
        return render_template("admin/outbox.html", listing=None, smtp=True)
    listing = mail_folder.listing(
        settings.outbox_dir,
        after=request.args.get("after", ""),
        before=request.args.get("before", ""),
        last=request.args.get("page") == "last",
        size=queries.PAGE,
    )
    return render_template("admin/outbox.html", listing=listing, smtp=False)


@bp.get("/outbox/<name>")
def outbox_message(name: str) -> ResponseReturnValue:
    settings = services().settings
    path = None if settings.smtp_url else mail_folder.message_path(settings.outbox_dir, name)
    if path is None:
        abort(404)
    message = mail_folder.parse(path)
    html, text = mail_folder.bodies(message)
    return render_template(
        "admin/outbox_message.html", name=name, message=message, html=html, text=text
    )
