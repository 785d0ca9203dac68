"""Commands for content owners: see a lesson as the reader will, see when lessons land, and
build the lead-magnet PDFs ahead of the first download."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from flask.cli import with_appcontext

from drip.clock import parse_instant
from drip.content import Sequence
from drip.render import Reader
from drip.schedule import reader_zone, timeline
from drip.web.context import services

SAMPLE_READER = Reader(email="reader@example.org", first_name="Alex", subscriber_id=1,
                       enrollment_id=1)


def _sequence(slug: str) -> Sequence:
    library = services().content.library()
    sequence = library.get(slug)
    if sequence is None:
        problems = library.broken.get(slug)
        if problems:
            details = "\n".join(str(p) for p in problems)
            raise click.ClickException(f"{slug} has problems (run drip check):\n{details}")
        known = ", ".join(sorted(library.sequences)) or "none"
        raise click.ClickException(f"no sequence {slug!r} (known: {known})")
    return sequence


@click.command("preview")
@click.argument("sequence")
@click.argument("lesson", required=False)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("preview"), show_default=True,
              help="Folder to write into; a sub-folder per sequence.")
@click.option("--name", default=SAMPLE_READER.first_name, show_default=True,
              help="The sample reader's first name ('' shows each default).")
@with_appcontext
def preview_command(sequence: str, lesson: str | None, out: Path, name: str) -> None:
    """Write each lesson's HTML and text, as a sample reader gets them, to files."""
    svc = services()
    found = _sequence(sequence)
    lessons = found.lessons
    if lesson is not None:
        chosen = found.lesson(lesson) or next(
            (item for item in lessons if f"{item.number:02d}-{item.key}" == lesson), None)
        if chosen is None:
            keys = ", ".join(item.key for item in lessons)
            raise click.ClickException(f"no lesson {lesson!r} in {sequence} (lessons: {keys})")
        lessons = (chosen,)
    reader = Reader(SAMPLE_READER.email, name, SAMPLE_READER.subscriber_id,
                    SAMPLE_READER.enrollment_id)
    folder = out / found.slug
    folder.mkdir(parents=True, exist_ok=True)
    for item in lessons:
        subject, html, text = svc.renderer.lesson(found, item).parts(reader, svc.links)
        stem = folder / f"{item.number:02d}-{item.key}"
        stem.with_suffix(".html").write_text(html, encoding="utf-8")
        stem.with_suffix(".txt").write_text(f"Subject: {subject}\n\n{text}", encoding="utf-8")
        click.echo(f"{stem}.html  {stem}.txt  ({len(html.encode()) / 1024:.0f} KB)  {subject}")


def _zone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"{value!r} is not an IANA time zone such as "
                                 "America/New_York") from None
    return value


def _signup(_ctx: click.Context, _param: click.Parameter, value: str) -> datetime:
    try:
        return parse_instant(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 instant such as "
                                 "2026-03-01T09:00:00-05:00") from None


@click.command("schedule")
@click.argument("sequence")
@click.option("--signup", required=True, callback=_signup,
              help="When the reader confirms (ISO-8601; without an offset: UTC).")
@click.option("--timezone", callback=_zone, default=None,
              help="The reader's IANA time zone; default: the sequence's.")
@with_appcontext
def schedule_command(sequence: str, signup: datetime, timezone: str | None) -> None:
    """Print when each lesson of SEQUENCE would land for such a reader."""
    found = _sequence(sequence)
    zone = reader_zone(timezone, found.timezone)
    start = signup.astimezone(zone)
    click.echo(f"{found.slug}: reader in {zone.key}, confirmed {start:%a %Y-%m-%d %H:%M %Z}")
    for lesson, moment in timeline(found.lessons, signup, found.window, zone):
        local = moment.astimezone(zone)
        day = (local.date() - start.date()).days
        click.echo(f"day {day:>3}  {local:%a %Y-%m-%d %H:%M %Z}  "
                   f"{lesson.number:02d}-{lesson.key}  {lesson.subject}")


@click.command("build-magnets")
@click.option("--force", is_flag=True, help="Rebuild even the PDFs that are up to date.")
@click.option("--page-size", type=click.Choice(["A4", "Letter"]), default="A4",
              show_default=True)
@with_appcontext
def build_magnets_command(force: bool, page_size: str) -> None:
    """Typeset every sequence's lead magnet into the data directory's magnets/ folder,
    skipping those whose source (magnet.md, templates, drip version) has not changed."""
    from drip import magnets  # WeasyPrint is heavy: loaded only for this command

    svc = services()
    library = svc.content.library()
    found = [s for s in library.sequences.values() if s.lead_magnet is not None]
    results: list[tuple[Sequence, bool]] = []
    with click.progressbar(found, label="building lead magnets", file=sys.stderr,
                           item_show_func=lambda s: s.slug if s else None) as bar:
        for sequence in bar:
            results.append((sequence, magnets.build(svc.settings, sequence, force=force,
                                                    page_size=page_size)))
    for sequence, built in results:
        path = magnets.common_path(svc.settings, sequence, page_size)
        click.echo(f"{'built' if built else 'up to date'}: {path}")
    for slug in sorted(library.broken):
        click.echo(f"skipped {slug}: it has problems (run drip check)", err=True)
