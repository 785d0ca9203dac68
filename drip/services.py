"""The service container: what the web handlers, the worker and the commands share.

It imports no Flask, so the worker (`drip worker`) and the command line reach the database,
the content and the dispatcher without loading the web layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from drip.audience.mail_domains import Resolver, system_resolver
from drip.content.store import ContentStore
from drip.core.clock import Clock, system_clock
from drip.core.config import Settings
from drip.dispatch import Dispatcher
from drip.mail.links import Links
from drip.mail.render import Renderer
from drip.mail.transports import Transport, transport_from_settings
from drip.ops.operators import PASSWORD_HASHER
from drip.store.db import make_engine, make_sessionmaker


@dataclass
class Services:
    """One per application or command: settings, database, content, renderer, links, clock.

    The engine is made on first use: a command that never touches the database (`drip
    check`) works whatever DRIP_DATABASE_URL says."""

    settings: Settings
    content: ContentStore
    renderer: Renderer
    links: Links
    clock: Clock
    transport: Callable[[], Transport]
    password_hasher: PasswordHasher
    resolver: Resolver = system_resolver  # DNS for the sign-up domain check
    engine_options: dict[str, Any] = field(default_factory=dict)
    _database: list[tuple[Engine, sessionmaker[Session]]] = field(
        default_factory=list, init=False, repr=False
    )
    _lock: Lock = field(default_factory=Lock, init=False, repr=False)

    @property
    def engine(self) -> Engine:
        return self._made()[0]

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self._made()[1]

    def _made(self) -> tuple[Engine, sessionmaker[Session]]:
        """One engine per Services, made once even when the first requests race."""
        with self._lock:
            if not self._database:
                engine = make_engine(
                    self.settings.resolved_database_url,
                    pooler=self.settings.database_pooler,
                    **self.engine_options,
                )
                self._database.append(
                    (engine, make_sessionmaker(engine, {PASSWORD_HASHER: self.password_hasher}))
                )
            return self._database[0]

    def dispose(self) -> None:
        """Close the engine's connections, if one was made (a command that never touched the
        database leaves none, and makes none now)."""
        with self._lock:
            for engine, _ in self._database:
                engine.dispose()

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
    resolver: Resolver = system_resolver,
) -> Services:
    """`password_hasher`: argon2 with its default cost unless given (tests make it cheap)."""
    hasher = password_hasher or PasswordHasher()
    return Services(
        settings=settings,
        engine_options=dict(engine_options or {}),
        content=ContentStore(settings.sequences_dir, settings.author_name),
        renderer=Renderer(settings),
        links=Links(
            settings.secret_key,
            settings.base_url,
            settings.confirm_days,
            settings.link_days,
            clock,
            settings.secret_key_fallbacks,
            settings.reply_address,
        ),
        clock=clock,
        transport=transport or (lambda: transport_from_settings(settings)),
        password_hasher=hasher,
        resolver=resolver,
    )
