"""Commands for content owners: check the courses, see a lesson as the reader will, see
when lessons land, print the embeddable form and build the lead-magnet PDFs."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from sqlalchemy import select

from drip.audience.subscriptions import SubscriptionError
from drip.audience.tags import TagError, clean_tag
from drip.cli.common import instant, sequence_named, services, zone
from drip.content import magnets
from drip.content.embed import snippet
from drip.content.loader import load_sequences, no_sequences
from drip.content.schedule import Pace, morning_of, reader_zone, timeline
from drip.content.sequences import Problem, Sequence
from drip.content.variants import arms
from drip.core.clock import parse_instant
from drip.dispatch.broadcasts import (
    BroadcastError,
    audience_count,
    cancel,
    progress,
    read_broadcast,
    schedule,
)
from drip.mail.links import sample_links
from drip.mail.render import SAMPLE_READER, Reader
from drip.mail.transports import SendError
from drip.ops.pace import reader_pace
from drip.store.models import Broadcast, Enrollment, Subscriber
from drip.studio.lint import lint, render_problems
from drip.studio.samples import UnknownLesson, send_test


@click.command("check")
def check_command() -> None:
    """Validate every sequence and render every message of it (lessons, the confirmation,
    the lead-magnet PDF) as sending would; print `path:line: problem`, exit 1 on errors."""
    svc = services()
    library = load_sequences(svc.settings.sequences_dir, svc.settings.author_name)
    empty = no_sequences(svc.settings.sequences_dir, library)
    problems = [
        *library.problems,
        *([empty] if empty else []),
        *render_problems(library, svc.renderer, svc.links, svc.settings, svc.clock()),
        *lint(library, svc.renderer),
    ]
    for problem in problems:
        click.echo(_from_here(problem), err=problem.severity == "error")
    for sequence in library.sequences.values():
        click.echo(sequence.summary())
    if any(p.severity == "error" for p in problems):
        sys.exit(1)


def _from_here(problem: Problem) -> str:
    """The problem with its file named from where the author stands (`sequences/tiny/01.md`
    when run in the project), so the line is short and a terminal can open it; a file
    elsewhere keeps its whole path."""
    try:
        shown = replace(problem, path=problem.path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(problem)
    return str(shown)


@click.command("embed")
@click.argument("sequence")
@click.option(
    "--tags",
    default="",
    help="Comma-separated tags every sign-up from this form gets (signed into the form).",
)
def embed_command(sequence: str, tags: str) -> None:
    """Print the sign-up form for SEQUENCE to paste into a web page."""
    svc = services()
    found = sequence_named(sequence)
    try:
        chosen = tuple(clean_tag(tag) for tag in tags.split(",") if tag.strip())
    except TagError as error:
        raise click.BadParameter(str(error), param_hint="'--tags'") from None
    click.echo(snippet(found, svc.settings.base_url, svc.settings.secret_key, chosen), nl=False)


@click.command("preview")
@click.argument("sequence")
@click.argument("lesson", required=False)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write into, a sub-folder per sequence; default: previews/ in "
    "the data directory (outside the repository).",
)
@click.option(
    "--name",
    default=SAMPLE_READER.first_name,
    show_default=True,
    help="The sample reader's first name ('' shows each default).",
)
def preview_command(sequence: str, lesson: str | None, out: Path | None, name: str) -> None:
    """Write each lesson's HTML and text, as a sample reader gets them, to files. The sample
    reader is nobody: its links lead to a page that says they come from a preview."""
    svc = services()
    out = out or svc.settings.data_dir / "previews"
    found = sequence_named(sequence)
    lessons = found.lessons
    if lesson is not None:
        chosen = found.lesson_named(lesson)
        if chosen is None:
            keys = ", ".join(item.key for item in lessons)
            raise click.ClickException(f"no lesson {lesson!r} in {sequence} (lessons: {keys})")
        lessons = (chosen,)
    reader = Reader(
        SAMPLE_READER.email, name, SAMPLE_READER.subscriber_id, SAMPLE_READER.enrollment_id
    )
    folder = out / found.slug
    folder.mkdir(parents=True, exist_ok=True)
    links = sample_links(svc.links, "preview")
    for item in (arm for each in lessons for arm in arms(each)):  # each variant: 01-x.b.html
        subject, html, text = svc.renderer.lesson(found, item).parts(reader, links)
        mark = f".{item.variant}" if item.variant not in ("", "a") else ""
        stem = folder / f"{item.number:02d}-{item.key}{mark}"
        Path(f"{stem}.html").write_text(html, encoding="utf-8")
        Path(f"{stem}.txt").write_text(f"Subject: {subject}\n\n{text}", encoding="utf-8")
        click.echo(f"{stem}.html  {stem}.txt  ({len(html.encode()) / 1024:.0f} KB)  {subject}")


def signup_instant(text: str, zone_name: str) -> datetime:
    """An ISO-8601 time; one without an offset is a wall-clock time in `zone_name`."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone_name))
    return parse_instant(value.isoformat())


@click.command("schedule")
@click.argument("sequence")
@click.option(
    "--signup",
    default=None,
    help="When the reader confirms (ISO-8601; without an offset: in --timezone).",
)
@click.option(
    "--timezone",
    callback=zone,
    default=None,
    help="The reader's IANA time zone; default: the sequence's.",
)
@click.option("--slower", is_flag=True, help="At the slower pace: each delay counted twice.")
@click.option(
    "--away-until",
    "away",
    default=None,
    help="The reader is away until this date (YYYY-MM-DD): lessons wait for the morning after.",
)
@click.option(
    "--reader",
    "email",
    default=None,
    help="A reader's address: their own pace, and when their lessons left will land.",
)
def schedule_command(
    sequence: str,
    signup: str | None,
    timezone: str | None,
    slower: bool,
    away: str | None,
    email: str | None,
) -> None:
    """Print when each lesson of SEQUENCE would land for such a reader, or for a real one."""
    found = sequence_named(sequence)
    if email is not None:
        _reader_schedule(found, email)
        return
    if signup is None:
        raise click.UsageError("give --signup (when the reader confirms) or --reader (an address)")
    reader_tz = reader_zone(timezone, found.timezone)
    try:
        confirmed = signup_instant(signup, reader_tz.key)
    except ValueError:
        raise click.BadParameter(
            f"{signup!r} is not an ISO-8601 time such as "
            "2026-03-01T09:00 or 2026-03-01T09:00:00-05:00",
            param_hint="'--signup'",
        ) from None
    pace = Pace(slower=slower, resumes_at=_back_from(away, found, reader_tz))
    start = confirmed.astimezone(reader_tz)
    click.echo(f"{found.slug}: reader in {reader_tz.key}, confirmed {start:%a %Y-%m-%d %H:%M %Z}")
    for lesson, moment in timeline(found.lessons, confirmed, found.window, reader_tz, pace):
        local = moment.astimezone(reader_tz)
        day = (local.date() - start.date()).days
        click.echo(
            f"day {day:>3}  {local:%a %Y-%m-%d %H:%M %Z}  "
            f"{lesson.number:02d}-{lesson.key}  {lesson.subject}"
        )


def _back_from(away: str | None, sequence: Sequence, reader_tz: ZoneInfo) -> datetime | None:
    """The morning after `--away-until`, in the reader's window."""
    if away is None:
        return None
    try:
        last = date.fromisoformat(away)
    except ValueError:
        raise click.BadParameter(
            f"{away!r} is not a date such as 2026-03-20", param_hint="'--away-until'"
        ) from None
    return morning_of(last + timedelta(days=1), sequence.window, reader_tz)


def _reader_schedule(sequence: Sequence, email: str) -> None:
    """One reader's pace in SEQUENCE and the dates that follow from it, from the database."""
    svc = services()
    with svc.sessions() as session:
        enrollment = session.scalar(
            select(Enrollment)
            .join(Subscriber)
            .where(Subscriber.email == email.strip().lower(), Enrollment.sequence == sequence.slug)
        )
        if enrollment is None:
            raise click.ClickException(f"{email} is not in {sequence.slug}")
        view = reader_pace(enrollment, sequence, svc.clock())
        click.echo(f"{sequence.slug}: {email} in {view.zone.key}, {enrollment.status}")
        click.echo(f"pace: {view.words}")
        for lesson, moment in view.upcoming:
            click.echo(
                f"{moment.astimezone(view.zone):%a %Y-%m-%d %H:%M %Z}  "
                f"{lesson.number:02d}-{lesson.key}  {lesson.subject}"
            )
        if not view.upcoming:
            click.echo("no lesson has a date now")


@click.command("build-magnets")
@click.option("--force", is_flag=True, help="Rebuild even the PDFs that are up to date.")
@click.option("--page-size", type=click.Choice(["A4", "Letter"]), default="A4", show_default=True)
def build_magnets_command(force: bool, page_size: str) -> None:
    """Typeset every sequence's lead magnet into the data directory's magnets/ folder,
    skipping those whose source (magnet.md, templates, drip version) has not changed; the
    same build as the admin's rebuild button. A magnet.md that cannot be made is named with
    its problem (exit 1) and its old PDF stays."""
    svc = services()
    library = svc.content.library()
    found = [s for s in library.sequences.values() if s.lead_magnet is not None]
    results: list[tuple[Sequence, magnets.Rebuilt | magnets.MagnetError]] = []
    with click.progressbar(
        found,
        label="building lead magnets",
        file=sys.stderr,
        item_show_func=lambda s: s.slug if s else None,
    ) as bar:
        for sequence in bar:
            try:
                outcome: magnets.Rebuilt | magnets.MagnetError = magnets.rebuild(
                    svc.settings, sequence, sizes=(page_size,), force=force
                )
            except magnets.MagnetError as error:
                outcome = error
            results.append((sequence, outcome))
    for sequence, outcome in results:
        path = magnets.common_path(svc.settings, sequence, page_size)
        if isinstance(outcome, magnets.MagnetError):
            click.echo(f"not built: {path}\n{outcome.problem}", err=True)
        else:
            click.echo(f"{'built' if outcome.built else 'up to date'}: {path}")
    for slug in sorted(library.broken):
        click.echo(f"skipped {slug}: it has problems (run drip check)", err=True)
    if any(isinstance(outcome, magnets.MagnetError) for _, outcome in results):
        sys.exit(1)


@click.command("test-send")
@click.argument("sequence")
@click.argument("lesson")
@click.option("--to", "to", required=True, help="Your own address.")
@click.option(
    "--name",
    default=SAMPLE_READER.first_name,
    show_default=True,
    help="The first name the lesson greets.",
)
def test_send_command(sequence: str, lesson: str, to: str, name: str) -> None:
    """Send LESSON of SEQUENCE (or `confirm`, the confirmation email) to your own address
    through the real transport, marked [TEST]; its links touch no reader."""
    svc = services()
    found = sequence_named(sequence)
    try:
        mid = send_test(
            svc.renderer, svc.links, svc.transport, found, lesson, to, svc.clock(), first_name=name
        )
    except (UnknownLesson, SubscriptionError, SendError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"sent [TEST] {found.slug}/{lesson} to {to} ({mid})")


@click.group("broadcast")
def broadcast_group() -> None:
    """One-off emails to the readers of one or more sequences."""


@broadcast_group.command("send")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--at",
    "at",
    callback=instant,
    help="When (ISO-8601); each reader gets it in their own window at or after. Default: now.",
)
@click.option("--dry-run", is_flag=True, help="Count the readers and show a few; send nothing.")
def broadcast_send(file: Path, at: datetime | None, dry_run: bool) -> None:
    """Schedule FILE.md (front matter: subject, preheader, to, readers, tags, segment)."""
    svc = services()
    library = svc.content.library()
    try:
        spec = read_broadcast(file, library)
    except BroadcastError as error:
        for problem in error.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    with svc.sessions() as session:
        try:
            if dry_run:
                total, first = audience_count(session, spec, svc.clock())
                click.echo(
                    f"{spec.name}: {total} readers would get it"
                    + (f", e.g. {', '.join(first)}" if first else "")
                )
                return
            broadcast = schedule(session, library, spec, at or svc.clock(), svc.clock(), "cli")
        except BroadcastError as error:
            raise click.ClickException(str(error)) from None
        total = sum(progress(session, broadcast.id).values())
    click.echo(f"broadcast {broadcast.id} ({spec.name}) scheduled for {total} readers")


@broadcast_group.command("status")
@click.argument("broadcast_id", type=int, required=False)
def broadcast_status(broadcast_id: int | None) -> None:
    """Each broadcast's progress: queued, sent, failed, skipped."""
    with services().sessions() as session:
        for broadcast in session.scalars(select(Broadcast).order_by(Broadcast.id)):
            if broadcast_id is not None and broadcast.id != broadcast_id:
                continue
            counts = progress(session, broadcast.id)
            parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            click.echo(
                f"{broadcast.id} {broadcast.name} ({broadcast.status}): {parts or 'no readers'}"
            )


@broadcast_group.command("cancel")
@click.argument("broadcast_id", type=int)
def broadcast_cancel(broadcast_id: int) -> None:
    """Stop a broadcast: readers whose turn has not come do not get it."""
    svc = services()
    with svc.sessions() as session:
        try:
            skipped = cancel(session, broadcast_id, svc.clock())
        except BroadcastError as error:
            raise click.ClickException(f"no broadcast {broadcast_id}") from error
    click.echo(f"broadcast {broadcast_id} cancelled; {skipped} readers will not get it")


COMMANDS = (
    check_command,
    broadcast_group,
    test_send_command,
    embed_command,
    preview_command,
    schedule_command,
    build_magnets_command,
)
