"""Commands about segments (saved filters of readers) and the CSV export that takes one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from drip.audience import segments
from drip.audience.exports import readers_csv
from drip.cli.common import services
from drip.store.models import Segment


def _fail(error: segments.SegmentError) -> None:
    for problem in error.problems:
        click.echo(f"drip segment: {problem}", err=True)
    sys.exit(1)


@click.group("segment")
def segment_group() -> None:
    """Saved filters of readers, for broadcasts (`segment: NAME`) and exports."""


@segment_group.command("create")
@click.argument("name")
@click.option("--sequence", "sequences", multiple=True, help="Enrolled in this sequence (repeat).")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    help="That enrollment's status: active, completed, paused, ... (repeat).",
)
@click.option("--tag", "tags", multiple=True, help="Has this tag (repeat: any of them).")
@click.option("--without-tag", "without_tags", multiple=True, help="Has not this tag (repeat).")
@click.option("--exam-before", default=None, help="Sign-up answer: exam before this day.")
@click.option("--exam-after", default=None, help="Sign-up answer: exam after this day.")
@click.option(
    "--responsibilities",
    multiple=True,
    help="Sign-up answer: 0, 1 or 2+ other responsibilities (repeat).",
)
@click.option("--clicked-within", type=int, default=None, help="Clicked a link in the last N days.")
@click.option("--no-click-within", type=int, default=None, help="No click in the last N days.")
@click.option("--lesson-within", type=int, default=None, help="Got a lesson in the last N days.")
@click.option("--no-lesson-within", type=int, default=None, help="No lesson in the last N days.")
@click.option(
    "--json",
    "definition_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A JSON file with the definition instead of the options (fields as in docs/authoring.md).",
)
@click.option("--replace", is_flag=True, help="Change the segment of that name if there is one.")
def segment_create(
    name: str,
    sequences: tuple[str, ...],
    statuses: tuple[str, ...],
    tags: tuple[str, ...],
    without_tags: tuple[str, ...],
    exam_before: str | None,
    exam_after: str | None,
    responsibilities: tuple[str, ...],
    clicked_within: int | None,
    no_click_within: int | None,
    lesson_within: int | None,
    no_lesson_within: int | None,
    definition_file: Path | None,
    replace: bool,
) -> None:
    """Save the segment NAME; prints how many readers it holds now."""
    svc = services()
    raw: Any = {
        "sequences": list(sequences),
        "status": list(statuses),
        "tags": list(tags),
        "without_tags": list(without_tags),
        "exam_before": exam_before,
        "exam_after": exam_after,
        "responsibilities": list(responsibilities),
        "clicked_within_days": clicked_within,
        "no_click_within_days": no_click_within,
        "lesson_within_days": lesson_within,
        "no_lesson_within_days": no_lesson_within,
    }
    if definition_file is not None:
        try:
            raw = json.loads(definition_file.read_text(encoding="utf-8"))
        except ValueError as error:
            raise click.ClickException(f"{definition_file}: not JSON: {error}") from None
    known = frozenset(svc.content.library().sequences)
    with svc.sessions() as session:
        try:
            segment = segments.save(session, name, raw, svc.clock(), "cli", known, replace=replace)
        except segments.SegmentError as error:
            _fail(error)
            return
        session.commit()
        found = segments.members(session, segment.definition, svc.clock())
    click.echo(
        f"segment {segment.name}: {found.count} readers now "
        f"({segments.describe(segment.definition)})"
    )


@segment_group.command("list")
def segment_list() -> None:
    """Every segment, its definition and how many readers it holds now."""
    svc = services()
    with svc.sessions() as session:
        found = session.scalars(select(Segment).order_by(Segment.name)).all()
        if not found:
            click.echo("no segments yet: drip segment create NAME --tag ...")
        for segment in found:
            total = segments.members(session, segment.definition, svc.clock()).count
            click.echo(f"{segment.name}: {total} readers ({segments.describe(segment.definition)})")


@segment_group.command("show")
@click.argument("name")
def segment_show(name: str) -> None:
    """How many readers the segment holds now, and the first few."""
    svc = services()
    with svc.sessions() as session:
        try:
            segment = segments.named(session, name)
        except segments.SegmentError as error:
            _fail(error)
            return
        found = segments.members(session, segment.definition, svc.clock())
    click.echo(f"{segment.name}: {segments.describe(segment.definition)}")
    click.echo(json.dumps(segment.definition, sort_keys=True))
    click.echo(
        f"{found.count} readers" + (f", e.g. {', '.join(found.first)}" if found.first else "")
    )


@segment_group.command("delete")
@click.argument("name")
def segment_delete(name: str) -> None:
    """Forget the segment (broadcasts already scheduled with it keep their readers)."""
    svc = services()
    with svc.sessions() as session:
        try:
            session.delete(segments.named(session, name))
        except segments.SegmentError as error:
            _fail(error)
            return
        session.commit()
    click.echo(f"segment {name} deleted")


@click.command("export")
@click.option("--segment", default=None, help="Only the readers of this segment.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write; default: standard output.",
)
def export_command(segment: str | None, out: Path | None) -> None:
    """Every reader (or a segment's) with each enrollment's status, as CSV: the admin's
    export."""
    svc = services()
    if segment:
        with svc.sessions() as session:
            try:
                segment = segments.named(session, segment).name
            except segments.SegmentError as error:
                _fail(error)
                return
    rows = readers_csv(svc.sessions, svc.clock(), segment)
    if out is None:
        for chunk in rows:
            click.echo(chunk, nl=False)
        return
    with out.open("w", encoding="utf-8", newline="") as file:
        file.writelines(rows)
    click.echo(f"wrote {out}", err=True)


COMMANDS = (segment_group, export_command)
