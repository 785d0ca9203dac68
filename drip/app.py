"""The application factory: settings, database, content, blueprints. Nothing at import time."""

from __future__ import annotations

from collections.abc import Callable

from argon2 import PasswordHasher
from flask import Flask

from drip.audience.mail_domains import Resolver, system_resolver
from drip.core.clock import Clock, system_clock
from drip.core.config import Settings, load_settings, signing_order
from drip.core.paths import PACKAGE, STATIC, TEMPLATES
from drip.mail.transports import Transport
from drip.services import build_services
from drip.web import errors, headers, health, metrics, sessions
from drip.web.admin import blueprint as admin
from drip.web.admin import pace as admin_pace
from drip.web.api import inbound, webhooks
from drip.web.api import signup as api
from drip.web.api import v1 as api_v1
from drip.web.context import close_session, csrf
from drip.web.public import blueprint as public
from drip.web.public import consent, engagement, home
from drip.web.public import pace as public_pace
from drip.web.public import signup as public_signup


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = system_clock,
    transport: Callable[[], Transport] | None = None,
    password_hasher: PasswordHasher | None = None,
    resolver: Resolver = system_resolver,
) -> Flask:
    settings = settings or load_settings()
    app = Flask(
        __name__, root_path=str(PACKAGE), template_folder=str(TEMPLATES), static_folder=str(STATIC)
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Flask >= 3.1 reads a cookie signed under a previous key; Flask-WTF's CSRF tokens
        # take the same keys as itsdangerous wants them (the last one signs).
        SECRET_KEY_FALLBACKS=list(settings.secret_key_fallbacks),
        WTF_CSRF_SECRET_KEY=signing_order(settings.secret_key, settings.secret_key_fallbacks),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
    )
    app.extensions["drip"] = build_services(
        settings, clock, transport, password_hasher=password_hasher, resolver=resolver
    )
    errors.init_app(app)  # first: its NUL check runs before anything reads the request
    sessions.init_app(app)
    csrf.init_app(app)
    headers.init_app(app)
    app.register_blueprint(home.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(admin.bp)
    metrics.init_app(app)
    app.register_blueprint(public.bp)
    app.register_blueprint(public_pace.bp)
    app.register_blueprint(admin_pace.bp)
    app.register_blueprint(engagement.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api_v1.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(inbound.bp)
    # JSON sign-ups and RFC 8058 one-click unsubscribes come from other sites' scripts and
    # from mail providers, with no drip session to hold a CSRF token (the api checks Origin).
    # The sign-up post takes an embedded form's signed token instead; both public views
    # still check the CSRF token of our own pages' forms themselves.
    csrf.exempt(api.bp)
    for blueprint in (api_v1.bp, *api_v1.NESTED):  # a bearer key, not a cookie: nothing
        csrf.exempt(blueprint)  # for another site to ride on
    csrf.exempt(inbound.bp)  # readers' replies, signed by the providers as their bounces
    csrf.exempt(webhooks.bp)  # providers sign their posts instead (drip.deliverability.providers)
    csrf.exempt(public_signup.post)
    csrf.exempt(consent.unsubscribe_post)
    csrf.exempt(consent.stop_broadcasts_page)  # RFC 8058 one-click; its page checks CSRF itself
    app.teardown_appcontext(close_session)
    return app
