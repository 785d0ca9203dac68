"""The admin's lead-magnet rebuild, at /admin/sequences/<slug>/magnet/build: the latest
build's progress (a page that reloads itself while the worker is at it, and its JSON), the
button that queues a rebuild (drip.jobs.magnet_builds), and the PDFs readers get now with their
first pages. Nested in the admin blueprint, so its login check and headers apply."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g, jsonify, redirect, render_template, send_file, url_for
from flask.typing import ResponseReturnValue

from drip.content import magnets
from drip.content.page_sizes import PAGE_SIZES
from drip.content.sequences import Sequence
from drip.jobs.magnet_builds import NoLeadMagnet, latest_build, queue_build, served
from drip.store.models import MagnetBuild, Role
from drip.web.admin.access import requires
from drip.web.context import db_session, services

bp = Blueprint("magnet_build", __name__, url_prefix="/sequences/<slug>/magnet")


def _sequence(slug: str) -> Sequence:
    found = services().content.library().get(slug)
    if found is None or found.lead_magnet is None:
        abort(404)
    return found


def _size(size: str) -> str:
    if size not in PAGE_SIZES:
        abort(404)
    return size


@bp.get("/build")
def page(slug: str) -> ResponseReturnValue:
    """The latest build and the PDFs readers get now."""
    sequence = _sequence(slug)
    return render_template(
        "admin/magnet_build.html",
        sequence=sequence,
        build=latest_build(db_session(), slug),
        pdfs=served(services().settings, sequence),
    )


@bp.post("/build")
@requires(Role.editor)
def start(slug: str) -> ResponseReturnValue:
    """Queue a rebuild; a second click while one waits or runs joins it."""
    svc = services()
    session = db_session()
    try:
        queue_build(session, svc.content.library(), slug, who=g.operator.email, now=svc.clock())
    except NoLeadMagnet:
        abort(404)
    session.commit()
    return redirect(url_for(".page", slug=slug))


@bp.get("/build.json")
def status(slug: str) -> ResponseReturnValue:
    sequence = _sequence(slug)
    build = latest_build(db_session(), slug)
    return jsonify(
        sequence=slug,
        **_build_fields(build),
        pdfs=[
            {
                "page_size": pdf.page_size,
                "current": pdf.current,
                "bytes": pdf.size,
                "url": url_for(".pdf", slug=slug, size=pdf.page_size),
                "first_page": url_for(".first_page", slug=slug, size=pdf.page_size),
            }
            for pdf in served(services().settings, sequence)
        ],
    )


def _build_fields(build: MagnetBuild | None) -> dict[str, Any]:
    if build is None:
        return {"id": None, "status": None}
    return {
        "id": build.id,
        "status": build.status,
        "steps_done": build.steps_done,
        "steps_total": build.steps_total,
        "percent": 100 * build.steps_done // max(build.steps_total, 1),
        "step": build.step,
        "error": build.error,
        "dropped": build.dropped,
        "requested_by": build.requested_by,
        "requested_at": build.requested_at.isoformat(),
        "finished_at": build.finished_at.isoformat() if build.finished_at else None,
    }


@bp.get("/build/<size>.pdf")
def pdf(slug: str, size: str) -> ResponseReturnValue:
    """The common PDF in this page size, as readers without a schedule get it."""
    path = magnets.common_path(services().settings, _sequence(slug), _size(size))
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype="application/pdf", download_name=f"{slug}-{size}.pdf")


@bp.get("/build/<size>.png")
def first_page(slug: str, size: str) -> ResponseReturnValue:
    path = magnets.first_page(services().settings, _sequence(slug), _size(size))
    if path is None:
        abort(404)
    return send_file(path, mimetype="image/png")
