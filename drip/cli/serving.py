"""`drip serve`: the Flask application on waitress, and the dispatch schedule beside it.

The only module of the command group that imports Flask; `drip.cli.running` imports it when
`drip serve` runs, so every other command starts without the web layer."""

from __future__ import annotations

import os
from contextlib import ExitStack

import click
from flask.logging import default_handler
from waitress import serve

from drip.app import create_app
from drip.cli.common import safe_url, served_base_url, warn_unsafe
from drip.cli.operators import announce_first_operator
from drip.core.logs import configure_logging
from drip.deliverability import guardrails
from drip.dispatch import DispatchLocked
from drip.jobs.worker import start_background
from drip.services import Services
from drip.store.db import check_database, migrate


def serve_web(host: str, port: int, *, scheduler: bool) -> None:
    """Check the database, migrate it, create the first operator, then serve until stopped.
    The guardrails stop the schedule's passes, never the web: sign-ups still come in while
    sending is refused."""
    base_url = os.environ.get("DRIP_BASE_URL")
    if not base_url:  # links in email point at what this process serves
        base_url = os.environ["DRIP_BASE_URL"] = served_base_url(host, port)
    app = create_app()
    # logfmt on stderr for drip's loggers, Flask's request errors included (without Flask's
    # own handler, which would print each error a second time in its own format).
    configure_logging()
    app.logger.removeHandler(default_handler)
    svc: Services = app.extensions["drip"]
    check_database(svc.engine)  # never create one here: a mistyped path is not a new site
    migrate(svc.engine)  # an existing drip database is brought up to date
    announce_first_operator(svc)
    blocked = guardrails.blocking(svc.settings, svc.content.library())
    if blocked:
        click.echo(guardrails.refusal(blocked), err=True)
    else:
        warn_unsafe(svc)
    with ExitStack() as stack:
        if scheduler:
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
