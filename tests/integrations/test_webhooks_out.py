"""Webhooks to other tools: a local HTTP receiver gets every event of a reader's whole
course, each signed, in order, once, even when it fails twice before it answers 2xx.

The receivers listen on loopback, which webhooks may reach only with the unsafe switch meant
for tests, DRIP_WEBHOOK_ALLOW_PRIVATE, turned on here by the `settings` fixture below."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from drip.audience.leaving import unsubscribe
from drip.audience.subscriptions import Consent, confirm, subscribe
from drip.core.clock import FrozenClock
from drip.core.config import Settings
from drip.integrations import hooks
from drip.integrations.outgoing import Reach
from drip.jobs.worker import webhook_job
from drip.services import Services
from drip.store.models import WebhookDelivery
from tests.conftest import make_settings
from tests.smtp import SmtpServer

LOOPBACK_ALLOWED = Reach(allow_private=True)  # what DRIP_WEBHOOK_ALLOW_PRIVATE=true gives


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer) -> Settings:
    return make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, webhook_allow_private=True)


class Receiver:
    """An HTTP endpoint on loopback that answers 500 to its first `failures` POSTs."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(500)
                else:
                    receiver.received.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(failures=2)
    yield server
    server.stop()


def verify(secret: str, header: str, body: bytes) -> bool:
    """What docs/api.md tells a receiver to do."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def run_hooks(services: Services, clock: FrozenClock) -> None:
    """The worker's webhook job, which takes DRIP_WEBHOOK_ALLOW_PRIVATE from the settings."""
    webhook_job(services)


def test_a_receiver_gets_every_event_of_a_course_signed_in_order_once_after_failing_twice(
    services: Services, clock: FrozenClock, smtp_server: SmtpServer, receiver: Receiver
) -> None:
    with services.sessions() as session:
        _, secret = hooks.add_endpoint(
            session, receiver.url, list(hooks.EVENT_TYPES), clock(), reach=LOOPBACK_ALLOWED
        )
        enrollment = subscribe(
            session,
            services.content.library(),
            "tiny",
            "ada@example.org",
            clock(),
            consent=Consent(source="test", text="yes"),
        )
        session.commit()
        enrollment_id = enrollment.id
    dispatcher = services.dispatcher()
    dispatcher.run_pass(clock())  # the confirmation email
    with services.sessions() as session:
        confirm(session, services.content.library(), enrollment_id, clock())
        session.commit()
    for _ in range(40):  # the course, pass by pass, with the webhook job beside it
        dispatcher.run_pass(clock())
        run_hooks(services, clock)
        clock.advance(hours=6)
    with services.sessions() as session:
        unsubscribe(session, enrollment_id, clock(), how="test")
        session.commit()
    for _ in range(3):
        run_hooks(services, clock)
        clock.advance(minutes=5)

    events = [json.loads(body) for _headers, body in receiver.received]
    assert [e["type"] for e in events] == [
        "subscriber.created",
        "subscriber.confirmed",
        "lesson.sent",
        "lesson.sent",
        "lesson.sent",
        "sequence.completed",
        "subscriber.unsubscribed",
    ]
    assert [e["data"].get("lesson") for e in events if e["type"] == "lesson.sent"] == [
        "welcome",
        "second",
        "third",
    ]
    assert len({e["id"] for e in events}) == len(events)
    assert all(e["data"]["reader"]["email"] == "ada@example.org" for e in events)
    assert all(
        verify(secret, headers["Drip-Signature"], body) for headers, body in receiver.received
    )
    with services.sessions() as session:
        rows = session.scalars(select(WebhookDelivery)).all()
        assert all(row.delivered_at is not None for row in rows)
        assert sum(row.attempts for row in rows) == len(rows) + 2  # the two failures


def test_an_endpoint_on_a_private_address_is_refused_unless_allowed(
    services: Services, clock: FrozenClock
) -> None:
    with services.sessions() as session:
        for url in (
            "http://127.0.0.1:9/hooks",
            "http://10.0.0.5/hooks",
            "http://[::1]/hooks",
            "http://169.254.169.254/latest",
        ):
            with pytest.raises(hooks.HookError, match="not a public address"):
                hooks.add_endpoint(session, url, ["lesson.sent"], clock())
        with pytest.raises(hooks.HookError, match="unknown events"):
            hooks.add_endpoint(session, "https://example.org/h", ["lesson.opened"], clock())
        endpoint, _ = hooks.add_endpoint(
            session, "http://10.0.0.5/hooks", ["lesson.sent"], clock(), allow_private=True
        )
        assert endpoint.id


def test_an_endpoint_that_keeps_failing_is_given_up_after_a_day_and_holds_up_nothing_else(
    services: Services, clock: FrozenClock
) -> None:
    dead = Receiver(failures=10**6)
    try:
        with services.sessions() as session:
            hooks.add_endpoint(
                session, dead.url, ["subscriber.created"], clock(), reach=LOOPBACK_ALLOWED
            )
            subscribe(
                session,
                services.content.library(),
                "tiny",
                "ada@example.org",
                clock(),
                consent=Consent(source="test", text="yes"),
            )
            session.commit()
        for _ in range(30):
            run_hooks(services, clock)
            clock.advance(hours=1)
        with services.sessions() as session:
            (row,) = session.scalars(select(WebhookDelivery)).all()
            assert row.given_up_at is not None and row.last_status == 500
            assert 5 <= row.attempts <= 30
    finally:
        dead.stop()
