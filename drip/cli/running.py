"""Commands that run drip: create the database, serve the web, dispatch on schedule or once."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import datetime

import click
from flask import current_app
from flask.cli import with_appcontext
from waitress import serve

from drip.cli.common import instant, now_or, safe_url, services
from drip.cli.operators import announce_first_operator
from drip.db import migrate
from drip.dispatch import DispatchLocked, dispatch_lock
from drip.worker import run_worker, start_background


@click.command("init")
@with_appcontext
def init_command() -> None:
    """Create the database, or migrate it to the newest schema."""
    svc = services()
    migrate(svc.engine)
    click.echo(f"database ready: {safe_url(svc)}")


@click.command("dispatch")
@click.option("--now", callback=instant, help="Run the pass as of this ISO-8601 instant.")
@click.option("--dry-run", is_flag=True, help="Print what would be sent; change nothing.")
@with_appcontext
def dispatch_command(now: datetime | None, dry_run: bool) -> None:
    """Run one dispatch pass and print what it sent (or would send)."""
    svc = services()
    moment = now_or(now)
    try:
        with dispatch_lock(svc.engine) if not dry_run else ExitStack():
            report = svc.dispatcher().run_pass(moment, dry_run=dry_run,
                                               progress=lambda o: click.echo(str(o)))
    except DispatchLocked as error:
        raise click.ClickException(str(error)) from None
    if dry_run:
        for outcome in report.outcomes:
            click.echo(str(outcome))
    click.echo(report.summary())


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-scheduler", is_flag=True, help="Serve the web only (workers dispatch).")
@with_appcontext
def serve_command(host: str, port: int, no_scheduler: bool) -> None:
    """Web pages and, unless told otherwise, the dispatch schedule in one process."""
    svc = services()
    migrate(svc.engine)
    announce_first_operator(svc)
    with ExitStack() as stack:
        if not no_scheduler:
            try:
                start_background(svc, stack)
            except DispatchLocked as error:
                click.echo(f"scheduler not started: {error}", err=True)
        click.echo(f"drip on http://{host}:{port}/ (database {safe_url(svc)}, "
                   f"outbox {svc.settings.outbox_dir if not svc.settings.smtp_url else 'off'})")
        serve(current_app._get_current_object(), host=host, port=port, threads=8)  # type: ignore[attr-defined]


@click.command("worker")
@with_appcontext
def worker_command() -> None:
    """Dispatch on schedule until stopped (SIGTERM finishes the current pass)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        run_worker(services())
    except DispatchLocked as error:
        raise click.ClickException(str(error)) from None


COMMANDS = (init_command, serve_command, worker_command, dispatch_command)
