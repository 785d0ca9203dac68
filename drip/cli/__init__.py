"""The `drip` command group (plain click, on the service container), by who uses it:
running drip (`running`), readers (`readers`), segments and the export (`segments`),
content owners (`content`) and operator accounts (`operators`).

Only `drip serve` builds the Flask application (`serving`, imported when it runs): the
worker, a dispatch pass and every other command load no Flask."""

from __future__ import annotations

import sys

import click

from drip.cli import content, operators, readers, running, segments
from drip.cli.common import database_problem
from drip.core.config import ConfigError


@click.group()
def cli() -> None:
    """drip: email courses from Markdown files, sent on schedule.

    Settings come from DRIP_* environment variables (see docs/operating.md).
    """


for command in (*running.COMMANDS, *readers.COMMANDS, *segments.COMMANDS, *content.COMMANDS):
    cli.add_command(command)
cli.add_command(operators.admin_group)
cli.add_command(operators.api_key_group)
cli.add_command(operators.webhook_group)


def main() -> None:
    try:
        cli.main(prog_name="drip")
    except ConfigError as error:
        click.echo(f"drip: {error}", err=True)
        sys.exit(2)
    except Exception as error:
        if (problem := database_problem(error)) is None:
            raise
        click.echo(f"drip: {problem}", err=True)
        sys.exit(1)
