"""Background jobs that a request queues and the worker runs (CSV imports, lead-magnet
builds): the states they share, so every job page and JSON reads them the same way."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.store.models import ImportJob, MagnetBuild

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
ACTIVE = (QUEUED, RUNNING)  # the worker still has it; its page reloads itself


def waiting(session: Session, kind: type[ImportJob] | type[MagnetBuild]) -> list[int]:
    """The jobs of one kind the worker has yet to finish, oldest first. One process owns
    the schedule (drip.jobs.worker), so a job found running was cut short: the worker goes on
    with it (an import from its last chunk; a build starts again)."""
    return list(session.scalars(select(kind.id).where(kind.status.in_(ACTIVE)).order_by(kind.id)))
