"""The `drip` command group (click, through Flask's `FlaskGroup`)."""

from __future__ import annotations

import sys
from collections import Counter
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from flask.cli import FlaskGroup
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from drip.app import create_app
from drip.clock import parse_instant
from drip.config import ConfigError
from drip.content import load_sequences
from drip.db import migrate
from drip.dispatch import DispatchLocked, dispatch_lock
from drip.imports import import_readers, read_rows
from drip.intake import waiting
from drip.lint import lint
from drip.models import Enrollment
from drip.services import Services
from drip.subscriptions import Consent, SubscriptionError, subscribe
from drip.web.context import services


def _app() -> object:
    return create_app()


class DripGroup(FlaskGroup):
    """Flask's group (app context for every command) without its --app, --env-file and
    --debug options: drip always builds its own app and reads only DRIP_* settings."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.params = [p for p in self.params if p.name not in {"app", "env_file", "debug"}]


@click.group(cls=DripGroup, create_app=_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False, set_debug_flag=False)
def cli() -> None:
    """drip: email courses from Markdown files, sent on schedule.

    Settings come from DRIP_* environment variables (see the README).
    """


def _instant(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 instant such as "
                                 "2026-03-01T09:00:00Z") from None


def _now(value: datetime | None) -> datetime:
    return value or services().clock()


def _safe_url(svc: Services) -> str:
    return make_url(svc.settings.resolved_database_url).render_as_string(hide_password=True)


@cli.command("init")
def init_command() -> None:
    """Create the database, or migrate it to the newest schema."""
    svc = services()
    migrate(svc.engine)
    click.echo(f"database ready: {_safe_url(svc)}")


@cli.command("check")
def check_command() -> None:
    """Validate every sequence; print `path:line: problem`, exit 1 on errors (not warnings)."""
    svc = services()
    library = load_sequences(svc.settings.sequences_dir)
    for problem in [*library.problems, *lint(library, svc.renderer)]:
        click.echo(str(problem), err=problem.severity == "error")
    for sequence in library.sequences.values():
        click.echo(sequence.summary())
    if any(p.severity == "error" for p in library.problems):
        sys.exit(1)


@cli.command("dispatch")
@click.option("--now", callback=_instant, help="Run the pass as of this ISO-8601 instant.")
@click.option("--dry-run", is_flag=True, help="Print what would be sent; change nothing.")
def dispatch_command(now: datetime | None, dry_run: bool) -> None:
    """Run one dispatch pass and print what it sent (or would send)."""
    svc = services()
    instant = _now(now)
    try:
        with dispatch_lock(svc.engine) if not dry_run else ExitStack():
            report = svc.dispatcher().run_pass(instant, dry_run=dry_run,
                                               progress=lambda o: click.echo(str(o)))
    except DispatchLocked as error:
        raise click.ClickException(str(error)) from None
    if dry_run:
        for outcome in report.outcomes:
            click.echo(str(outcome))
    click.echo(report.summary())


@cli.command("subscribe")
@click.argument("email")
@click.argument("sequence")
@click.option("--name", default="", help="The reader's first name.")
@click.option("--timezone", default=None, help="IANA time zone; default: the sequence's.")
@click.option("--confirmed", is_flag=True,
              help="You vouch for the reader's consent: skip the confirmation email.")
@click.option("--now", callback=_instant, help="Sign-up time (ISO-8601); default: now.")
def subscribe_command(email: str, sequence: str, name: str, timezone: str | None,
                      confirmed: bool, now: datetime | None) -> None:
    """Subscribe EMAIL to SEQUENCE."""
    svc = services()
    instant = _now(now)
    library = svc.content.library()
    with svc.sessions() as session:
        try:
            enrollment = subscribe(
                session, library, sequence, email, instant, first_name=name, timezone=timezone,
                confirmed=confirmed,
                consent=Consent(source="cli" + (" (operator vouched)" if confirmed else ""),
                                text=library.sequences[sequence].consent
                                if sequence in library.sequences else ""))
        except SubscriptionError as error:
            raise click.ClickException(str(error)) from None
        session.commit()
        due = enrollment.due_at.isoformat() if enrollment.due_at else "-"
        click.echo(f"{enrollment.subscriber.email} -> {sequence}: {enrollment.status}"
                   f" (next: {enrollment.next_lesson or 'confirmation email'}, due {due})")


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sequence", required=True, help="Sequence slug to subscribe every row to.")
@click.option("--confirmed", is_flag=True,
              help="You vouch for every reader's consent: skip the confirmation email.")
@click.option("--source", default=None, help="Where the consent was given (kept per reader).")
@click.option("--now", callback=_instant, help="Import time (ISO-8601); default: now.")
def import_command(file: Path, sequence: str, confirmed: bool, source: str | None,
                   now: datetime | None) -> None:
    """Subscribe the readers of a CSV file (columns email, first_name, timezone)."""
    svc = services()
    library = svc.content.library()
    text = file.read_text(encoding="utf-8-sig")
    total = max(len(text.splitlines()) - 1, 0)
    consent_text = library.sequences[sequence].consent if sequence in library.sequences else ""
    consent = Consent(source=source or f"import of {file.name}", text=consent_text)
    try:
        with click.progressbar(length=total, label=f"importing {file.name}",
                               file=sys.stderr) as bar:
            report = import_readers(svc.sessions, library, read_rows(text.splitlines()),
                                    sequence, _now(now), consent=consent, confirmed=confirmed,
                                    progress=bar.update)
    except SubscriptionError as error:
        raise click.ClickException(str(error)) from None
    for line, message in report.errors:
        click.echo(f"{file}:{line}: {message}", err=True)
    click.echo(f"imported {report.added} readers into {sequence}; "
               f"{len(report.errors)} rows skipped")
    if report.errors:
        sys.exit(1)


@cli.command("status")
def status_command() -> None:
    """Readers per sequence and status, and sign-ups not yet taken in."""
    svc = services()
    with svc.sessions() as session:
        rows = session.execute(select(Enrollment.sequence, Enrollment.status, func.count())
                               .group_by(Enrollment.sequence, Enrollment.status)).all()
        queued = waiting(session)
    counts: dict[str, Counter[str]] = {}
    for slug, status, count in rows:
        counts.setdefault(slug, Counter())[status] = count
    for slug in sorted(set(counts) | set(svc.content.library().sequences)):
        found = counts.get(slug, Counter())
        parts = ", ".join(f"{n} {s}" for s, n in sorted(found.items())) or "no readers"
        click.echo(f"{slug}: {parts}")
    if queued:
        click.echo(f"{queued} sign-ups waiting to be taken in by the next dispatch pass")


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-scheduler", is_flag=True, help="Serve the web only (workers dispatch).")
def serve_command(host: str, port: int, no_scheduler: bool) -> None:
    """Web pages and, unless told otherwise, the dispatch schedule in one process."""
    from waitress import serve

    from drip.worker import start_background

    svc = services()
    migrate(svc.engine)
    announce_first_operator(svc)
    with ExitStack() as stack:
        if not no_scheduler:
            try:
                start_background(svc, stack)
            except DispatchLocked as error:
                click.echo(f"scheduler not started: {error}", err=True)
        click.echo(f"drip on http://{host}:{port}/ (database {_safe_url(svc)}, "
                   f"outbox {svc.settings.outbox_dir if not svc.settings.smtp_url else 'off'})")
        from flask import current_app

        serve(current_app._get_current_object(), host=host, port=port, threads=8)  # type: ignore[attr-defined]


@cli.command("worker")
def worker_command() -> None:
    """Dispatch on schedule until stopped (SIGTERM finishes the current pass)."""
    import logging

    from drip.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        run_worker(services())
    except DispatchLocked as error:
        raise click.ClickException(str(error)) from None


from drip.embed import embed_command  # noqa: E402

cli.add_command(embed_command)
from drip.operators import admin_group, announce_first_operator  # noqa: E402

cli.add_command(admin_group)
from drip.tools import build_magnets_command, preview_command, schedule_command  # noqa: E402

cli.add_command(preview_command)
cli.add_command(schedule_command)
cli.add_command(build_magnets_command)


def main() -> None:
    try:
        cli.main(prog_name="drip")
    except ConfigError as error:
        click.echo(f"drip: {error}", err=True)
        sys.exit(2)
