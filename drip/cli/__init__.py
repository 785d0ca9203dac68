"""The `drip` command group (click, through Flask's `FlaskGroup`), by who uses it:
running drip (`running`), readers (`readers`), segments and the export (`segments`),
content owners (`content`) and operator accounts (`operators`)."""

from __future__ import annotations

import sys
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup

from drip.app import create_app
from drip.cli import content, operators, readers, running, segments
from drip.cli.common import database_problem
from drip.config import ConfigError


def _app() -> Flask:
    return create_app()


class DripGroup(FlaskGroup):
    """Flask's group (app context for every command) without its --app, --env-file and
    --debug options: drip always builds its own app and reads only DRIP_* settings."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.params = [p for p in self.params if p.name not in {"app", "env_file", "debug"}]


@click.group(
    cls=DripGroup,
    create_app=_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
)
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
