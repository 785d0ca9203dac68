"""Commands that run drip: create the database, serve the web, dispatch on schedule or once.

`drip serve` is the one command that needs Flask: its body lives in `drip.cli.serving`,
imported when the command runs, so the worker and a dispatch pass never load the web layer."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime

import click
import dns.resolver

from drip.cli.common import guard, instant, now_or, safe_url, services
from drip.core.logs import configure_logging
from drip.deliverability import guardrails
from drip.dispatch import DispatchLocked, dispatch_lock
from drip.jobs.worker import run_worker
from drip.store.db import migrate


@click.command("init")
def init_command() -> None:
    """Create the database, or migrate it to the newest schema."""
    svc = services()
    migrate(svc.engine)
    click.echo(f"database ready: {safe_url(svc)}")


@click.command("dispatch")
@click.option("--now", callback=instant, help="Run the pass as of this ISO-8601 instant.")
@click.option("--dry-run", is_flag=True, help="Print what would be sent; change nothing.")
def dispatch_command(now: datetime | None, dry_run: bool) -> None:
    """Run one dispatch pass and print what it sent (or would send)."""
    svc = services()
    moment = now_or(now)
    if dry_run:
        for line in guardrails.problems(svc.settings, svc.content.library()):
            click.echo(f"would refuse to send: {line}", err=True)
    else:
        guard(svc)
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
def serve_command(host: str, port: int, no_scheduler: bool) -> None:
    """Web pages and, unless told otherwise, the dispatch schedule in one process.

    Links in email start with DRIP_BASE_URL, or, when it is unset, this host and port. The
    database must be one `drip init` made (it is brought up to the newest migration)."""
    from drip.cli.serving import serve_web  # Flask loads for this command only

    serve_web(host, port, scheduler=not no_scheduler)


@click.command("worker")
def worker_command() -> None:
    """Dispatch on schedule until stopped (SIGTERM finishes the current pass)."""
    configure_logging()
    svc = services()
    guard(svc)
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


COMMANDS = (init_command, serve_command, worker_command, dispatch_command, doctor_command)
