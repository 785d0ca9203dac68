"""Outgoing webhooks cannot be turned against drip's own network: every address is checked
at delivery (not only when the endpoint is added), the connection goes to the checked
address, redirects are not followed, and malformed URLs are refused without crashing.

All traffic stays on loopback: each test runs real HTTP servers on 127.0.0.1 that count
what reaches them. Public names are given by a resolver the test passes in."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session

from drip.cli import cli
from drip.core.clock import FrozenClock
from drip.deliverability import guardrails
from drip.integrations import hooks
from drip.integrations.outgoing import Reach
from drip.services import Services
from drip.store.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import make_settings

PUBLIC = "93.184.215.14"  # an address is_global calls public; nothing is ever sent to it


class Counting:
    """A loopback HTTP server that counts the requests it gets and answers `status`, with a
    Location header when it redirects."""

    def __init__(
        self, status: int = 204, location: str = "", tls: ssl.SSLContext | None = None
    ) -> None:
        self.hosts: list[str] = []
        counting = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                counting.hosts.append(self.headers.get("Host", ""))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def requests(self) -> int:
        return len(self.hosts)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[Counting]:
    running = Counting()
    yield running
    running.stop()


def queue_row(session: Session, url: str, now: datetime, allow_private: bool = False) -> int:
    """An endpoint and one event for it, written straight to the tables: past the check of
    `webhook add`, as a row from an older drip, or one edited in the database, would be."""
    endpoint = WebhookEndpoint(
        url=url,
        events="subscriber.created",
        secret="whsec_x",
        created_at=now,
        allow_private=allow_private,
    )
    session.add(endpoint)
    session.flush()
    row = WebhookDelivery(
        endpoint_id=endpoint.id,
        event_key=f"test:{endpoint.id}",
        type="subscriber.created",
        subscriber_id=None,
        payload='{"type":"subscriber.created"}',
        created_at=now,
        next_attempt_at=now,
        attempts=0,
    )
    session.add(row)
    session.commit()
    return row.id


def resolving(table: dict[str, list[list[str]]]) -> tuple[Reach, list[str]]:
    """A Reach whose resolver answers from `table` (a name's answers, one per lookup, the
    last repeated) and records each lookup; public addresses only."""
    looked_up: list[str] = []

    def resolve(host: str, _port: int) -> list[str]:
        looked_up.append(host)
        answers = table[host]
        return answers[min(looked_up.count(host), len(answers)) - 1]

    return Reach(resolve=resolve), looked_up


def test_a_queued_webhook_to_loopback_is_refused_at_delivery_and_reaches_nothing(
    services: Services, clock: FrozenClock, server: Counting
) -> None:
    urls = [
        server.url,
        f"http://localhost:{server.port}/hooks",
        f"http://0.0.0.0:{server.port}/hooks",
        f"http://[::ffff:127.0.0.1]:{server.port}/hooks",
        f"http://127.1:{server.port}/hooks",
        f"http://2130706433:{server.port}/hooks",
    ]
    with services.sessions() as session:
        ids = [queue_row(session, url, clock()) for url in urls]
        hooks.deliver(session, clock())
        rows = [session.get(WebhookDelivery, row_id) for row_id in ids]
    assert server.requests == 0
    for url, row in zip(urls, rows, strict=True):
        assert row is not None and row.delivered_at is None, url
        assert row.last_error and "not a public address" in row.last_error, url


def test_an_endpoint_added_for_a_private_network_still_never_reaches_loopback(
    services: Services, clock: FrozenClock, server: Counting
) -> None:
    with services.sessions() as session:
        row_id = queue_row(session, server.url, clock(), allow_private=True)
        hooks.deliver(session, clock())
        row = session.get(WebhookDelivery, row_id)
        assert row is not None and "not a public address" in (row.last_error or "")
    assert server.requests == 0


def test_a_redirect_from_an_endpoint_is_not_followed_and_fails_with_the_reason(
    services: Services, clock: FrozenClock, server: Counting
) -> None:
    """The "public" endpoint is a loopback server the test's resolver names
    hooks.example; loopback is allowed here only so that it can answer at all."""
    bouncer = Counting(status=302, location=server.url)
    try:
        reach = Reach(allow_private=True, resolve=lambda _host, _port: ["127.0.0.1"])
        with services.sessions() as session:
            row_id = queue_row(session, f"http://hooks.example:{bouncer.port}/in", clock())
            hooks.deliver(session, clock(), reach)
            row = session.get(WebhookDelivery, row_id)
            assert row is not None and row.delivered_at is None and row.last_status == 302
            assert "redirects are not followed" in (row.last_error or "")
            assert server.url in (row.last_error or "")
        assert bouncer.hosts == [f"hooks.example:{bouncer.port}"]  # the name, not the address
        assert server.requests == 0
    finally:
        bouncer.stop()


def test_a_name_is_resolved_once_per_delivery_and_the_checked_address_is_the_one_reached(
    services: Services, clock: FrozenClock, server: Counting
) -> None:
    looked_up: list[str] = []

    def resolve(host: str, _port: int) -> list[str]:
        looked_up.append(host)
        return ["127.0.0.1"]  # the system's resolver knows no hooks.example

    with services.sessions() as session:
        row_id = queue_row(session, f"http://hooks.example:{server.port}/in", clock())
        hooks.deliver(session, clock(), Reach(allow_private=True, resolve=resolve))
        row = session.get(WebhookDelivery, row_id)
        assert row is not None and row.delivered_at is not None
    assert looked_up == ["hooks.example"]
    assert server.hosts == [f"hooks.example:{server.port}"]


def test_a_name_that_rebinds_to_loopback_after_it_was_added_is_refused_at_delivery(
    services: Services, clock: FrozenClock, server: Counting
) -> None:
    reach, looked_up = resolving({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    url = f"http://rebind.example:{server.port}/hooks"
    with services.sessions() as session:
        hooks.add_endpoint(session, url, ["subscriber.created"], clock(), reach=reach)
        endpoint = session.query(WebhookEndpoint).one()
        session.add(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                event_key="test:rebind",
                type="subscriber.created",
                subscriber_id=None,
                payload="{}",
                created_at=clock(),
                next_attempt_at=clock(),
                attempts=0,
            )
        )
        session.commit()
        hooks.deliver(session, clock(), reach)
        row = session.query(WebhookDelivery).one()
        assert row.delivered_at is None and row.attempts == 1
        assert "rebind.example resolves to 127.0.0.1" in (row.last_error or "")
    assert looked_up == ["rebind.example", "rebind.example"]
    assert server.requests == 0


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_a_name_resolving_to_any_non_global_address_is_refused_when_added(
    services: Services, clock: FrozenClock, address: str
) -> None:
    reach, _ = resolving({"inside.example": [[PUBLIC, address]]})
    with services.sessions() as session, pytest.raises(hooks.HookError) as refused:
        hooks.add_endpoint(
            session, "https://inside.example/hooks", ["lesson.sent"], clock(), reach=reach
        )
    assert f"inside.example resolves to {address} is not a public address" in str(refused.value)


def test_allow_private_admits_a_private_network_but_never_loopback_link_local_or_metadata(
    services: Services, clock: FrozenClock
) -> None:
    with services.sessions() as session:
        for url in ("http://10.0.0.5/h", "http://100.64.0.1/h", "http://[fd00::1]/h"):
            hooks.add_endpoint(session, url, ["lesson.sent"], clock(), allow_private=True)
        for url in (
            "http://127.0.0.1/h",
            "http://169.254.169.254/latest",
            "http://[fe80::1]/h",
            "http://[::ffff:127.0.0.1]/h",
        ):
            with pytest.raises(hooks.HookError, match="not a public address"):
                hooks.add_endpoint(session, url, ["lesson.sent"], clock(), allow_private=True)


MALFORMED = {
    "http://a@127.0.0.1:8201@8.8.8.8/": "user name or password",
    "http://user:secret@example.org/hooks": "user name or password",
    "http:///hooks": "names no host",
    "http://example.org:99999/hooks": "port is not a number from 1 to 65535",
    "http://example.org:0/hooks": "port is not a number from 1 to 65535",
    "http://example.org:http/hooks": "port is not a number from 1 to 65535",
    "ftp://example.org/hooks": "only http:// and https://",
    "file:///etc/passwd": "only http:// and https://",
    "gopher://example.org:70/_x": "only http:// and https://",
    "http://example.org\\@127.0.0.1/": "backslashes",
    "http://exa mple.org/": "spaces",
    "http://exa_mple.org/": "is not a host name",
}


def test_a_malformed_url_is_refused_when_added_saying_what_is_wrong(
    services: Services, clock: FrozenClock
) -> None:
    with services.sessions() as session:
        for url, why in MALFORMED.items():
            with pytest.raises(hooks.HookError) as refused:
                hooks.add_endpoint(session, url, ["lesson.sent"], clock())
            assert "is not a webhook URL" in str(refused.value) and why in str(refused.value), url


def test_the_cli_refuses_a_url_with_an_at_sign_before_its_host(
    tmp_path: Path, sqlite_url: str
) -> None:
    env = {
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": sqlite_url,
        "DRIP_SECRET_KEY": "k",
    }
    result = CliRunner().invoke(
        cli,
        ["webhook", "add", "http://a@127.0.0.1:8201@8.8.8.8/", "--events", "lesson.sent"],
        env=env,
    )
    assert result.exit_code == 1
    assert "is not a webhook URL: it holds a user name or password" in result.output


def test_a_malformed_url_already_in_the_database_fails_with_the_reason_and_the_rest_go(
    services: Services, clock: FrozenClock, server: Counting
) -> None:
    with services.sessions() as session:
        bad = [queue_row(session, url, clock()) for url in MALFORMED]
        good = queue_row(session, server.url, clock())
        hooks.deliver(session, clock(), Reach(allow_private=True))
        for row_id, why in zip(bad, MALFORMED.values(), strict=True):
            row = session.get(WebhookDelivery, row_id)
            assert row is not None and row.given_up_at is not None and row.delivered_at is None
            assert why in (row.last_error or "")
        delivered = session.get(WebhookDelivery, good)
        assert delivered is not None and delivered.delivered_at is not None
    assert server.requests == 1


def test_the_unsafe_switch_for_tests_is_a_problem_for_the_production_guardrails(
    services: Services,
) -> None:
    library = services.content.library()
    assert not any("WEBHOOK" in line for line in guardrails.problems(services.settings, library))
    unsafe = make_settings(
        services.settings.data_dir.parent,
        services.settings.database_url,
        smtp_url="smtp://relay.example:587",
        allow_unsafe_sending=False,
        webhook_allow_private=True,
    )
    lines = guardrails.problems(unsafe, library)
    assert any(line.startswith("DRIP_WEBHOOK_ALLOW_PRIVATE: on") for line in lines)
    assert guardrails.blocking(unsafe, library)


def certificate_for(name: str, folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `name` and its key, as PEM files in `folder`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_goes_to_the_checked_address_with_the_name_as_sni_and_certificate_host(
    services: Services, clock: FrozenClock, tmp_path: Path
) -> None:
    cert_file, key_file = certificate_for("hooks.example", tmp_path)
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert_file, key_file)
    names: list[str | None] = []

    def heard(_sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        names.append(name)

    served.sni_callback = heard
    trusting = ssl.create_default_context(cafile=str(cert_file))
    reach = Reach(allow_private=True, resolve=lambda _host, _port: ["127.0.0.1"], tls=trusting)
    server = Counting(tls=served)
    try:
        with services.sessions() as session:
            good = queue_row(session, f"https://hooks.example:{server.port}/in", clock())
            wrong = queue_row(session, f"https://other.example:{server.port}/in", clock())
            hooks.deliver(session, clock(), reach)
            delivered, refused = (
                session.get(WebhookDelivery, good),
                session.get(WebhookDelivery, wrong),
            )
            assert delivered is not None and delivered.delivered_at is not None
            assert refused is not None and refused.delivered_at is None
            assert "certificate" in (refused.last_error or "")
        assert server.hosts == [f"hooks.example:{server.port}"]
        assert names == ["hooks.example", "other.example"]
    finally:
        server.stop()
