"""The application factory: settings, database, content, blueprints. Nothing at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from drip.clock import Clock, system_clock
from drip.config import PROJECT_ROOT, Settings, load_settings
from drip.content import ContentStore
from drip.db import make_engine, make_sessionmaker
from drip.dispatch import Dispatcher
from drip.links import Links
from drip.mailer import Transport, transport_from_settings
from drip.render import Renderer

csrf = CSRFProtect()


@dataclass
class Services:
    """What handlers and commands share: one per application, reached through `services()`."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    content: ContentStore
    renderer: Renderer
    links: Links
    clock: Clock
    transport: Callable[[], Transport]

    def dispatcher(self, worker_id: str | None = None) -> Dispatcher:
        return Dispatcher(self.engine, self.settings, self.content, self.renderer, self.links,
                          self.transport, worker_id)


def build_services(settings: Settings, clock: Clock = system_clock,
                   transport: Callable[[], Transport] | None = None,
                   engine_options: dict[str, Any] | None = None) -> Services:
    engine = make_engine(settings.resolved_database_url, **(engine_options or {}))
    return Services(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        content=ContentStore(settings.sequences_dir),
        renderer=Renderer(settings),
        links=Links(settings.secret_key, settings.base_url, settings.confirm_days,
                    settings.link_days, clock),
        clock=clock,
        transport=transport or (lambda: transport_from_settings(settings)),
    )


def create_app(settings: Settings | None = None, *, clock: Clock = system_clock,
               transport: Callable[[], Transport] | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__, root_path=str(PROJECT_ROOT / "drip"),
                template_folder=str(PROJECT_ROOT / "templates"),
                static_folder=str(PROJECT_ROOT / "drip" / "web" / "static"))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
    )
    app.extensions["drip"] = build_services(settings, clock, transport)
    csrf.init_app(app)

    from drip import metrics
    from drip.web import admin, health

    app.register_blueprint(health.bp)
    app.register_blueprint(admin.bp)
    metrics.init_app(app)
    from drip.web import api, public

    app.register_blueprint(public.bp)
    app.register_blueprint(api.bp)
    # JSON sign-ups and RFC 8058 one-click unsubscribes come from other sites' scripts and
    # from mail providers, with no drip session to hold a CSRF token (the api checks Origin).
    # The sign-up post takes an embedded form's signed token instead; both public views
    # still check the CSRF token of our own pages' forms themselves.
    csrf.exempt(api.bp)
    csrf.exempt(public.signup_post)
    csrf.exempt(public.unsubscribe_post)
    app.teardown_appcontext(_close_session)
    return app


def services() -> Services:
    svc: Services = current_app.extensions["drip"]
    return svc


def db_session() -> Session:
    """The request's session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = services().sessions()
    session: Session = g.db_session
    return session


def _close_session(_error: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
