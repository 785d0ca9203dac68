"""Rebuilding a lead magnet from the admin, as a background job like a CSV import: the
request queues a build (or joins the one already waiting for that sequence), the worker
runs it (drip.jobs.worker), and its page shows the steps done and then the PDF's first page.

The build is `magnets.rebuild`, the one `drip build-magnets` runs: every page size is
typeset anew, and the per-reader PDFs of the older source are dropped (each is made again
on its reader's next download). A build that fails saves nothing, so readers keep the PDF
they had, and it says what to fix as `drip check` does, `path:line: problem`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from drip.content import magnets
from drip.content.magnets import MagnetError
from drip.content.page_sizes import PAGE_SIZES
from drip.content.sequences import Library, Sequence
from drip.core.config import Settings
from drip.store.jobs import ACTIVE, DONE, FAILED, QUEUED, RUNNING
from drip.store.models import MagnetBuild

log = logging.getLogger(__name__)

SIZES = tuple(PAGE_SIZES)  # a rebuild from the admin makes every page size


class NoLeadMagnet(LookupError):
    """The sequence is not there, or has no lead magnet to build."""


def queue_build(
    session: Session, library: Library, slug: str, *, who: str, now: datetime
) -> MagnetBuild:
    """A build of `slug`'s lead magnet for the worker, or the build already queued or
    running for it (two clicks make one build); the caller commits. Raises NoLeadMagnet."""
    sequence = library.get(slug)
    if sequence is None or sequence.lead_magnet is None:
        raise NoLeadMagnet(f"{slug} has no lead magnet to build")
    waiting = _active(session, slug)
    if waiting is not None:
        return waiting
    build = MagnetBuild(
        sequence=slug,
        requested_by=who,
        requested_at=now,
        status=QUEUED,
        steps_done=0,
        steps_total=magnets.steps(SIZES),
        step="",
        dropped=0,
        active=slug,
    )
    try:
        with session.begin_nested():
            session.add(build)
    except IntegrityError:  # another request queued one between the look and the insert
        joined = _active(session, slug)
        if joined is None:
            raise
        return joined
    return build


def _active(session: Session, slug: str) -> MagnetBuild | None:
    return session.scalar(select(MagnetBuild).where(MagnetBuild.active == slug))


def latest_build(session: Session, slug: str) -> MagnetBuild | None:
    return session.scalar(
        select(MagnetBuild)
        .where(MagnetBuild.sequence == slug)
        .order_by(MagnetBuild.id.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class Served:
    """A common PDF as readers get it now."""

    page_size: str
    size: int  # bytes
    built_at: datetime  # when the file was written
    current: bool  # built from magnet.md (and the templates) as they are now


def served(settings: Settings, sequence: Sequence) -> list[Served]:
    """The common PDFs in the cache, each page size that has one; a failed build leaves
    them as they were, so these are what readers get whatever the latest build says."""
    found = []
    for page_size in PAGE_SIZES:
        path = magnets.common_path(settings, sequence, page_size)
        if path.is_file():
            info = path.stat()
            found.append(
                Served(
                    page_size,
                    info.st_size,
                    datetime.fromtimestamp(info.st_mtime, UTC),
                    magnets.is_current(settings, sequence, page_size),
                )
            )
    return found


def run_build(
    sessions: sessionmaker[Session],
    library: Library,
    settings: Settings,
    build_id: int,
    now: datetime,
    *,
    progress: Callable[[int], None] | None = None,
) -> MagnetBuild | None:
    """Run a queued build to its end (a few seconds: each page size typesets in about one),
    committing its steps as they go so its page shows them; `progress` hears the steps done
    after each commit. Returns the build, finished; None when there is no such build."""
    with sessions() as session:
        build = session.get(MagnetBuild, build_id)
        if build is None or build.status not in ACTIVE:
            return build
        build.status, build.started_at, build.steps_done = RUNNING, now, 0
        session.commit()
        slug = build.sequence

    def step(done: int, doing: str) -> None:
        with sessions() as session:
            running = session.get(MagnetBuild, build_id)
            if running is not None:
                running.steps_done, running.step = done, doing[:200]
                session.commit()
        if progress:
            progress(done)

    sequence = library.get(slug)
    if sequence is None or sequence.lead_magnet is None:  # broken, or gone, since queued
        problems = "\n".join(str(p) for p in library.broken.get(slug, []))
        return _finish(sessions, build_id, now, error=problems or f"{slug} has no lead magnet")
    try:
        rebuilt = magnets.rebuild(settings, sequence, force=True, progress=step)
    except MagnetError as error:
        return _finish(sessions, build_id, now, error=str(error.problem))
    except Exception as error:  # a bug or a full disk: the page says so, the log has more
        log.exception("lead-magnet build %s of %s failed", build_id, slug)
        return _finish(sessions, build_id, now, error=f"the build stopped: {error}")
    return _finish(sessions, build_id, now, dropped=rebuilt.dropped)


def _finish(
    sessions: sessionmaker[Session],
    build_id: int,
    now: datetime,
    *,
    error: str | None = None,
    dropped: int = 0,
) -> MagnetBuild | None:
    with sessions() as session:
        build = session.get(MagnetBuild, build_id)
        if build is None:
            return None
        build.status = FAILED if error else DONE
        build.error, build.dropped = error, dropped
        build.finished_at, build.active = now, None
        if error is None:
            build.steps_done, build.step = build.steps_total, ""
        session.commit()
        session.expunge(build)
        return build
