"""The application factory: settings, database, content, blueprints. Nothing at import time."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from drip.clock import Clock, system_clock
from drip.config import PROJECT_ROOT, Settings, load_settings
from drip.mailer import Transport
from drip.services import build_services
from drip.web import admin, api, api_v1, errors, headers, health, home, metrics, public
from drip.web.context import close_session, csrf


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
    headers.init_app(app)
    errors.init_app(app)
    app.register_blueprint(home.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(admin.bp)
    metrics.init_app(app)
    app.register_blueprint(public.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api_v1.bp)
    # JSON sign-ups and RFC 8058 one-click unsubscribes come from other sites' scripts and
    # from mail providers, with no drip session to hold a CSRF token (the api checks Origin).
    # The sign-up post takes an embedded form's signed token instead; both public views
    # still check the CSRF token of our own pages' forms themselves.
    csrf.exempt(api.bp)
    csrf.exempt(api_v1.bp)  # a bearer key, not a cookie: nothing for another site to ride on
    csrf.exempt(public.signup_post)
    csrf.exempt(public.unsubscribe_post)
    app.teardown_appcontext(close_session)
    return app
