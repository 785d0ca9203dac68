"""What the replies' tests share: the reply mailbox (Dovecot), the app over each module's
own `settings`, its services, and the welcome lesson Ada was sent, the message her replies
answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from drip.app import create_app
from drip.core.clock import FrozenClock
from drip.core.config import Settings
from drip.services import Services
from tests.conftest import CHEAP_HASHER
from tests.deliverability.test_bounces import sign_up
from tests.imap import Dovecot, start_dovecot
from tests.smtp import Received, SmtpServer


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """The reply mailbox: a Dovecot of its own (missing: skipped here, failed in CI)."""
    server = start_dovecot()
    yield server
    server.stop()


@pytest.fixture
def app(settings: Settings, clock: FrozenClock) -> Iterator[Flask]:
    application = create_app(settings, clock=clock, password_hasher=CHEAP_HASHER)
    application.config["TESTING"] = True
    yield application
    application.extensions["drip"].engine.dispose()


@pytest.fixture
def svc(app: Flask) -> Services:
    services: Services = app.extensions["drip"]
    return services


@pytest.fixture
def welcome(svc: Services, smtp_server: SmtpServer, clock: FrozenClock) -> Received:
    sign_up(svc, "ada@example.org")
    svc.dispatcher().run_pass(clock())
    (message,) = smtp_server.messages
    return message
