"""The service container: what the web handlers, the worker and the commands share.

It imports no Flask, so the worker (`drip worker`) and the command line reach the database,
the content and the dispatcher without loading the web layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from drip.clock import Clock, system_clock
from drip.config import Settings
from drip.content import ContentStore
from drip.db import make_engine, make_sessionmaker
from drip.dispatch import Dispatcher
from drip.links import Links
from drip.mailer import Transport, transport_from_settings
from drip.operators import PASSWORD_HASHER
from drip.render import Renderer


@dataclass
class Services:
    """One per application or command: settings, database, content, renderer, links, clock."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    content: ContentStore
    renderer: Renderer
    links: Links
    clock: Clock
    transport: Callable[[], Transport]
    password_hasher: PasswordHasher

    def dispatcher(self, worker_id: str | None = None) -> Dispatcher:
        return Dispatcher(
            self.engine,
            self.settings,
            self.content,
            self.renderer,
            self.links,
            self.transport,
            worker_id,
            self.clock,
        )


def build_services(
    settings: Settings,
    clock: Clock = system_clock,
    transport: Callable[[], Transport] | None = None,
    engine_options: dict[str, Any] | None = None,
    password_hasher: PasswordHasher | None = None,
) -> Services:
    """`password_hasher`: argon2 with its default cost unless given (tests make it cheap)."""
    engine = make_engine(settings.resolved_database_url, **(engine_options or {}))
    hasher = password_hasher or PasswordHasher()
    return Services(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine, {PASSWORD_HASHER: hasher}),
        content=ContentStore(settings.sequences_dir, settings.author_name),
        renderer=Renderer(settings),
        links=Links(
            settings.secret_key,
            settings.base_url,
            settings.confirm_days,
            settings.link_days,
            clock,
            settings.secret_key_fallbacks,
        ),
        clock=clock,
        transport=transport or (lambda: transport_from_settings(settings)),
        password_hasher=hasher,
    )
