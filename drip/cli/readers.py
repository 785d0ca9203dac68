"""Commands about readers: subscribe one, import a CSV of them, count them."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import click

from drip.audience.imports import queue_import, run_import
from drip.audience.intake import waiting
from drip.audience.subscriptions import Consent, SubscriptionError, subscribe
from drip.cli.common import instant, now_or, services
from drip.deliverability.sending_pause import status_line
from drip.store.queries import counts_by_sequence_and_status


@click.command("subscribe")
@click.argument("email")
@click.argument("sequence")
@click.option("--name", default="", help="The reader's first name.")
@click.option("--timezone", default=None, help="IANA time zone; default: the sequence's.")
@click.option(
    "--confirmed",
    is_flag=True,
    help="You vouch for the reader's consent: skip the confirmation email.",
)
@click.option("--now", callback=instant, help="Sign-up time (ISO-8601); default: now.")
def subscribe_command(
    email: str,
    sequence: str,
    name: str,
    timezone: str | None,
    confirmed: bool,
    now: datetime | None,
) -> None:
    """Subscribe EMAIL to SEQUENCE."""
    svc = services()
    moment = now_or(now)
    library = svc.content.library()
    with svc.sessions() as session:
        try:
            enrollment = subscribe(
                session,
                library,
                sequence,
                email,
                moment,
                first_name=name,
                timezone=timezone,
                confirmed=confirmed,
                consent=Consent(
                    source="cli" + (" (operator vouched)" if confirmed else ""),
                    text=library.sequences[sequence].consent
                    if sequence in library.sequences
                    else "",
                ),
            )
        except SubscriptionError as error:
            raise click.ClickException(str(error)) from None
        session.commit()
        due = enrollment.due_at.isoformat() if enrollment.due_at else "-"
        click.echo(
            f"{enrollment.subscriber.email} -> {sequence}: {enrollment.status}"
            f" (next: {enrollment.next_lesson or 'confirmation email'}, due {due})"
        )


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sequence", required=True, help="Sequence slug to subscribe every row to.")
@click.option(
    "--confirmed",
    is_flag=True,
    help="You vouch for every reader's consent: skip the confirmation email.",
)
@click.option("--source", default=None, help="Where the consent was given (kept per reader).")
@click.option("--now", callback=instant, help="Import time (ISO-8601); default: now.")
def import_command(
    file: Path, sequence: str, confirmed: bool, source: str | None, now: datetime | None
) -> None:
    """Subscribe the readers of a CSV file (columns email, first_name, timezone): as an
    import job, the same the admin's upload makes, run here to its end."""
    svc = services()
    library = svc.content.library()
    moment = now_or(now)
    try:
        with svc.sessions() as session, file.open(encoding="utf-8-sig", newline="") as upload:
            job = queue_import(
                session,
                library,
                upload,
                filename=file.name,
                sequence=sequence,
                confirmed=confirmed,
                source=source or f"import of {file.name}",
                who="drip import",
                now=moment,
                data_dir=svc.settings.data_dir,
            )
            session.commit()
            job_id, total = job.id, job.total
    except SubscriptionError as error:
        raise click.ClickException(str(error)) from None
    with click.progressbar(length=total, label=f"importing {file.name}", file=sys.stderr) as bar:
        done = run_import(
            svc.sessions,
            library,
            job_id,
            moment,
            data_dir=svc.settings.data_dir,
            progress=bar.update,
        )
    if done is None or done.status != "done":
        raise click.ClickException(
            f"the import stopped: {done.last_error if done else ''}"
            " (run it again to go on from where it stopped)"
        )
    for line, message in done.errors:
        click.echo(f"{file}:{line}: {message}", err=True)
    if done.refused > len(done.errors):
        click.echo(f"... and {done.refused - len(done.errors)} more rows refused", err=True)
    click.echo(
        f"imported {done.added} readers into {sequence}"
        + (f", {done.updated} already known" if done.updated else "")
        + f"; {done.refused} rows skipped"
    )
    if done.refused:
        sys.exit(1)


@click.command("status")
def status_command() -> None:
    """Readers per sequence and status, and sign-ups not yet taken in."""
    svc = services()
    with svc.sessions() as session:
        counts = counts_by_sequence_and_status(session)
        queued = waiting(session)
        sending = status_line(session)
    for slug in sorted(set(counts) | set(svc.content.library().sequences)):
        found = counts.get(slug, Counter())
        parts = ", ".join(f"{n} {s}" for s, n in sorted(found.items())) or "no readers"
        click.echo(f"{slug}: {parts}")
    if queued:
        click.echo(f"{queued} sign-ups waiting to be taken in by the next dispatch pass")
    click.echo(sending)


COMMANDS = (subscribe_command, import_command, status_command)
