"""What the command groups share: the services of the command's app, and parsing instants."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from sqlalchemy.engine import make_url

from drip.clock import parse_instant
from drip.content import Sequence
from drip.services import Services
from drip.web.context import services

__all__ = ["instant", "now_or", "safe_url", "sequence_named", "services", "zone"]


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
