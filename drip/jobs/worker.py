"""The schedule: APScheduler runs a dispatch pass every `DRIP_DISPATCH_INTERVAL` seconds.

It lives in exactly one kind of process: `drip worker`, or `drip serve` in the
single-process default; never inside gunicorn's web workers (APScheduler's FAQ: one process
owns a schedule). SIGTERM and SIGINT let the running pass finish, then stop.
"""

from __future__ import annotations

import logging
import signal
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from drip.audience.imports import run_import
from drip.deliverability import guardrails
from drip.deliverability.bounces import Policy
from drip.deliverability.mailbox import read_mailbox
from drip.dispatch import Dispatcher, PassReport, dispatch_lock
from drip.integrations import hooks
from drip.integrations.outgoing import Reach
from drip.jobs.magnet_builds import run_build
from drip.jobs.replies import reply_job
from drip.services import Services
from drip.store.jobs import waiting
from drip.store.models import ImportJob, MagnetBuild

log = logging.getLogger(__name__)
WEBHOOK_INTERVAL = 5  # seconds between webhook runs
JOB_INTERVAL = 2  # seconds between looks for imports and lead-magnet builds to work on
IMPORT_SLICE = 20.0  # seconds one import run works before the next gets a turn


def read_bounces(services: Services) -> None:
    """Read the bounce mailbox (DRIP_BOUNCE_IMAP_URL) before the pass, so a reader whose
    address bounced is suppressed before the next lesson; a failure here is logged and
    does not hold the pass back."""
    settings = services.settings
    if not settings.bounce_imap_url:
        return
    try:
        with services.sessions() as session:
            result = read_mailbox(
                session,
                settings.bounce_imap_url,
                settings.bounce_imap_processed,
                services.clock(),
                Policy.from_settings(settings),
            )
    except Exception:
        log.exception("reading the bounce mailbox failed; the next pass will try again")
        return
    if result.read:
        log.info(result.summary())


def dispatch_job(services: Services, dispatcher: Dispatcher) -> None:
    """One scheduled pass, unless a production guardrail stops it (checked on every pass:
    a sequence's sender can change while the worker runs). An error is logged and the next
    pass tries again; a pass that did something logs one line of counts."""
    read_bounces(services)
    reply_job(services)
    try:
        blocked = guardrails.blocking(services.settings, services.content.library())
        if blocked:
            log.error(
                "dispatch refused: not sending through DRIP_SMTP_URL",
                extra={"fields": {"problems": "; ".join(blocked)}},
            )
            return
        dispatcher.check_clock()  # a worker whose clock is off says so (drip.core.skew)
        report = dispatcher.run_pass(services.clock())
    except Exception:
        log.exception("dispatch pass failed; the next pass will try again")
        return
    counts = pass_counts(report)
    if counts:
        log.info("dispatch pass", extra={"fields": counts})


def pass_counts(report: PassReport) -> dict[str, int]:
    """What a pass did, by outcome (and by kind of message when it sent more than one
    kind), plus the sign-ups taken in; empty when it did nothing."""
    counts = dict(sorted(Counter(o.status.replace("-", "_") for o in report.outcomes).items()))
    if len({outcome.kind for outcome in report.outcomes}) > 1:  # "sent_broadcast" ...
        for outcome in report.outcomes:
            key = f"{outcome.status}_{outcome.kind}".replace("-", "_")
            counts[key] = counts.get(key, 0) + 1
    if report.intake.taken:
        counts["signups_taken_in"] = report.intake.taken
    if report.intake.held:
        counts["signups_waiting"] = len(report.intake.held)
    return counts


def webhook_job(services: Services) -> None:
    """Queue what happened for the webhook endpoints and POST what is due: a job of its own,
    so a slow or dead endpoint never holds up a dispatch pass."""
    try:
        with services.sessions() as session:
            hooks.collect(session, services.clock())
            reach = Reach(allow_private=services.settings.webhook_allow_private)
            hooks.deliver(session, services.clock(), reach)
    except Exception:
        log.exception("webhook run failed; the next run will try again")


def _work_through(
    services: Services,
    what: str,
    kind: type[ImportJob] | type[MagnetBuild],
    run: Callable[[int], object],
) -> None:
    """Run each job of one kind that is waiting; an error is logged and the next run goes
    on from where this one stopped."""
    try:
        with services.sessions() as session:
            found = waiting(session, kind)
        for job_id in found:
            run(job_id)
    except Exception:
        log.exception("%s run failed; the next run will go on from where it stopped", what)


def import_job(services: Services) -> None:
    """Work on the CSV imports waiting (an admin upload, say), a slice of time each run, so
    an import survives the request that brought it and never holds the web up."""
    _work_through(
        services,
        "import",
        ImportJob,
        lambda job_id: run_import(
            services.sessions,
            services.content.library(),
            job_id,
            services.clock(),
            data_dir=services.settings.data_dir,
            seconds=IMPORT_SLICE,
        ),
    )


def magnet_job(services: Services) -> None:
    """Run the lead-magnet rebuilds asked for in the admin, each to its end (a few
    seconds: shorter than an import's slice, so it needs no slicing)."""
    _work_through(
        services,
        "lead-magnet build",
        MagnetBuild,
        lambda build_id: run_build(
            services.sessions,
            services.content.library(),
            services.settings,
            build_id,
            services.clock(),
        ),
    )


def _schedule(scheduler: BaseScheduler, services: Services) -> Dispatcher:
    dispatcher = services.dispatcher()
    scheduler.add_job(
        dispatch_job,
        "interval",
        args=(services, dispatcher),
        seconds=services.settings.dispatch_interval,
        id="dispatch",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    for job, name, seconds in (
        (webhook_job, "webhooks", WEBHOOK_INTERVAL),
        (import_job, "imports", JOB_INTERVAL),
        (magnet_job, "magnets", JOB_INTERVAL),
    ):
        scheduler.add_job(
            job,
            "interval",
            args=(services,),
            id=name,
            seconds=seconds,
            max_instances=1,
            coalesce=True,
        )
    return dispatcher


def run_worker(services: Services) -> None:
    """`drip worker`: block, dispatching on schedule, until a signal says stop."""
    with dispatch_lock(services.engine):
        jobs = ThreadPoolExecutor()
        scheduler = BlockingScheduler(timezone=UTC, executors={"default": jobs})
        dispatcher = _schedule(scheduler, services)

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: finishing the current pass, then stopping", signum)
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info(
            "worker %s dispatching every %ss",
            dispatcher.worker_id,
            services.settings.dispatch_interval,
        )
        scheduler.start()
        # A signal stops the scheduler without waiting (its handler must not block), and
        # `start` returns: the pass in flight is finished here, while this worker still
        # holds the dispatch lock and before the interpreter shuts down (which refuses the
        # pass's threads their work: its SMTP sessions' QUITs, its lanes, its claims ahead).
        jobs.shutdown(wait=True)


def start_background(services: Services, stack: ExitStack) -> BackgroundScheduler:
    """`drip serve`: the same schedule on a thread beside the web server."""
    stack.enter_context(dispatch_lock(services.engine))
    scheduler = BackgroundScheduler(timezone=UTC)
    _schedule(scheduler, services)
    scheduler.start()
    stack.callback(scheduler.shutdown)
    return scheduler
