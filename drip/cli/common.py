"""What the command groups share: the command's services, and parsing instants."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError

from drip.content.sequences import Sequence
from drip.core.clock import parse_instant
from drip.core.config import load_settings
from drip.deliverability import guardrails
from drip.services import Services, build_services
from drip.store.db import DatabaseProblem, check_database, make_engine


class Runtime:
    """The command's services, built on first use from the DRIP_* settings: `--help` and a
    mistyped command read no setting and open no database. A caller that already holds
    services (a test's application) passes them as the group's `obj`."""

    def __init__(self, services: Services | None = None) -> None:
        self._services = services
        self._built = False

    def services(self) -> Services:
        if self._services is None:
            self._services = build_services(load_settings())
            self._built = True
        return self._services

    def close(self) -> None:
        """Close the connections of the services this command built (not a caller's)."""
        if self._built and self._services is not None:
            self._services.dispose()


def services() -> Services:
    """The services of the running command (one set per invocation of the `drip` group)."""
    root = click.get_current_context().find_root()
    if not isinstance(root.obj, Runtime):
        root.obj = Runtime()
        root.call_on_close(root.obj.close)
    return root.obj.services()


def instant(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """A click callback: an ISO-8601 instant, or a clear error naming the expected form."""
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO-8601 instant such as 2026-03-01T09:00:00Z"
        ) from None


def zone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A click callback: an IANA time zone name."""
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"{value!r} is not an IANA time zone such as America/New_York"
        ) from None
    return value


def now_or(value: datetime | None) -> datetime:
    return value or services().clock()


def safe_url(svc: Services) -> str:
    """The database URL with any password hidden, for messages."""
    return make_url(svc.settings.resolved_database_url).render_as_string(hide_password=True)


def served_base_url(host: str, port: int) -> str:
    """The address `drip serve --host --port` answers at, for links when DRIP_BASE_URL is
    unset; a wildcard host (every interface) is reached on this machine at loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def sequence_named(slug: str) -> Sequence:
    """The readable sequence `slug`, or an error that says what is wrong with it."""
    library = services().content.library()
    sequence = library.get(slug)
    if sequence is None:
        problems = library.broken.get(slug)
        if problems:
            details = "\n".join(str(p) for p in problems)
            raise click.ClickException(f"{slug} has problems (run drip check):\n{details}")
        known = ", ".join(sorted(library.sequences)) or "none"
        raise click.ClickException(f"unknown sequence {slug!r} (known: {known})")
    return sequence


def guard(svc: Services) -> None:
    """Stop a command that would send when its database is not drip's (before any lock file
    is made beside it), or would send through DRIP_SMTP_URL while a guardrail says no."""
    check_database(svc.engine)
    blocked = guardrails.blocking(svc.settings, svc.content.library())
    if blocked:
        raise click.ClickException(guardrails.refusal(blocked))
    warn_unsafe(svc)


def warn_unsafe(svc: Services) -> None:
    for line in guardrails.problems(svc.settings, svc.content.library()):
        click.echo(f"sending anyway (DRIP_ALLOW_UNSAFE_SENDING): {line}", err=True)


def database_problem(error: BaseException) -> str | None:
    """The one line a command prints instead of a traceback when the database it needed is
    out of reach, missing, or has no drip tables; None when `error` is about something else
    (then its traceback is worth seeing)."""
    if isinstance(error, DatabaseProblem):
        return str(error)
    if not isinstance(error, DatabaseError):  # OperationalError, ProgrammingError among them
        return None
    try:
        settings = load_settings()
        engine = make_engine(settings.resolved_database_url, pooler=settings.database_pooler)
        try:
            check_database(engine)
        finally:
            engine.dispose()
    except DatabaseProblem as problem:
        return str(problem)
    return None
