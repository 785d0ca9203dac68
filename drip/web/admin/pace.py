"""The readers' pace on the admin's pages: template helpers the reader page and the sequence
page call (`reader_pace`, `pace_counts`), read through drip.ops.pace. No routes."""

from __future__ import annotations

from flask import Blueprint

from drip.ops import pace
from drip.store.models import Enrollment
from drip.web.context import db_session, services

bp = Blueprint("admin_pace", __name__)


@bp.app_template_global()
def reader_pace(enrollment: Enrollment) -> pace.PaceView | None:
    """This reader's pace in words and the dates that follow (None: the course is gone)."""
    svc = services()
    sequence = svc.content.library().get(enrollment.sequence)
    return pace.reader_pace(enrollment, sequence, svc.clock()) if sequence else None


@bp.app_template_global()
def pace_counts(slug: str) -> dict[str, int]:
    """Readers of the course paused, away and slower now."""
    return pace.pace_counts(db_session(), slug, services().clock())
