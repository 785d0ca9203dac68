"""Commands that run drip: create the database, serve the web, dispatch on schedule or once."""

from __future__ import annotations

import os
from contextlib import ExitStack
from datetime import datetime

import click
import dns.resolver
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask.logging import default_handler
from waitress import serve

from drip import guardrails
from drip.app import create_app
from drip.cli.common import instant, now_or, safe_url, served_base_url, services
from drip.cli.operators import announce_first_operator
from drip.db import check_database, migrate
from drip.dispatch import DispatchLocked, dispatch_lock
from drip.logs import configure_logging
from drip.services import Services
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
    if dry_run:
        for line in guardrails.problems(svc.settings, svc.content.library()):
            click.echo(f"would refuse to send: {line}", err=True)
    else:
        _guard(svc)
    try:
        with dispatch_lock(svc.engine) if not dry_run else ExitStack():
            report = svc.dispatcher().run_pass(
                moment, dry_run=dry_run, progress=lambda o: click.echo(str(o))
            )
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
    """Web pages and, unless told otherwise, the dispatch schedule in one process.

    Links in email start with DRIP_BASE_URL, or, when it is unset, this host and port. The
    database must be one `drip init` made (it is brought up to the newest migration)."""
    _logging()
    app, base_url = current_app._get_current_object(), services().settings.base_url  # type: ignore[attr-defined]
    if not os.environ.get("DRIP_BASE_URL"):  # links in email point at what this process serves
        base_url = os.environ["DRIP_BASE_URL"] = served_base_url(host, port)
        app = create_app()
    with app.app_context():
        svc = services()
        check_database(svc.engine)  # never create one here: a mistyped path is not a new site
        migrate(svc.engine)  # an existing drip database is brought up to date
        announce_first_operator(svc)
        _serve(app, svc, host, port, no_scheduler, base_url)


def _serve(
    app: Flask, svc: Services, host: str, port: int, no_scheduler: bool, base_url: str
) -> None:
    blocked = guardrails.blocking(svc.settings, svc.content.library())
    if blocked:  # the web still takes sign-ups in; the schedule's passes refuse to send
        click.echo(guardrails.refusal(blocked), err=True)
    else:
        _warn_unsafe(svc)
    with ExitStack() as stack:
        if not no_scheduler:
            try:
                start_background(svc, stack)
            except DispatchLocked as error:
                click.echo(f"scheduler not started: {error}", err=True)
        click.echo(
            f"drip on http://{host}:{port}/ (links in email start with {base_url}; database "
            f"{safe_url(svc)}, outbox "
            f"{svc.settings.outbox_dir if not svc.settings.smtp_url else 'off'})"
        )
        serve(app, host=host, port=port, threads=8)


@click.command("worker")
@with_appcontext
def worker_command() -> None:
    """Dispatch on schedule until stopped (SIGTERM finishes the current pass)."""
    _logging()
    svc = services()
    _guard(svc)
    try:
        run_worker(svc)
    except DispatchLocked as error:
        raise click.ClickException(str(error)) from None


@click.command("doctor")
@click.option(
    "--nameserver",
    metavar="HOST[:PORT]",
    help="Ask this DNS server instead of the system's resolver.",
)
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for DNS.")
@with_appcontext
def doctor_command(nameserver: str | None, timeout: float) -> None:
    """Check what sending for real needs: settings, senders, and the sender domains' SPF,
    DKIM and DMARC records. Exits 1 if any check finds a problem."""
    svc = services()
    resolver = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver:
        host, _, port = (
            nameserver.rpartition(":") if nameserver.count(":") == 1 else (nameserver, "", "")
        )
        resolver.nameservers = [host]
        resolver.port = int(port or 53)
    resolver.lifetime = timeout
    checks = guardrails.doctor(svc.settings, svc.content.library(), resolver)
    for check in checks:
        click.echo(str(check))
    if any(check.verdict == guardrails.PROBLEM for check in checks):
        raise SystemExit(1)


def _logging() -> None:
    """logfmt on stderr for drip's loggers, Flask's request errors included (without Flask's
    own handler, which would print each error a second time in its own format)."""
    configure_logging()
    current_app.logger.removeHandler(default_handler)


def _guard(svc: Services) -> None:
    """Stop a command that would send when its database is not drip's (before any lock file
    is made beside it), or would send through DRIP_SMTP_URL while a guardrail says no."""
    check_database(svc.engine)
    blocked = guardrails.blocking(svc.settings, svc.content.library())
    if blocked:
        raise click.ClickException(guardrails.refusal(blocked))
    _warn_unsafe(svc)


def _warn_unsafe(svc: Services) -> None:
    for line in guardrails.problems(svc.settings, svc.content.library()):
        click.echo(f"sending anyway (DRIP_ALLOW_UNSAFE_SENDING): {line}", err=True)


COMMANDS = (init_command, serve_command, worker_command, dispatch_command, doctor_command)
