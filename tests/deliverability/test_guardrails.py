"""Production guardrails: with DRIP_SMTP_URL set, nothing is sent over http links, from a
@localhost sender or without a postal address, unless DRIP_ALLOW_UNSAFE_SENDING says so;
the dashboard and /healthz show the problems either way, and `drip doctor` checks every
setting and the sender domain's DNS records (here a tiny DNS server on loopback)."""

from __future__ import annotations

import logging
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.resolver
import dns.rrset
import pytest
from click.testing import CliRunner, Result

from drip.app import create_app
from drip.cli import cli
from drip.content.loader import load_sequences
from drip.core.clock import FrozenClock
from drip.core.config import load_settings
from drip.deliverability import guardrails
from drip.jobs.worker import dispatch_job
from drip.services import build_services
from tests.conftest import TESTS, enroll, make_settings
from tests.smtp import SmtpServer, free_port
from tests.web.test_admin_access import add_operator, log_in

NOW = "2026-03-02T14:00:00Z"


@pytest.fixture
def local_sender_sequences(tmp_path: Path) -> Path:
    """The tiny course, sent from an address at localhost."""
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences" / "tiny", root / "tiny")
    yaml = root / "tiny" / "sequence.yaml"
    yaml.write_text(
        yaml.read_text().replace("Tiny Author <author@example.org>", "Tiny Author <me@localhost>")
    )
    return root


@pytest.fixture
def env(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, local_sender_sequences: Path
) -> dict[str, str]:
    """What a careless production start looks like: a relay, http links, a @localhost
    sender, no postal address."""
    return {
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": sqlite_url,
        "DRIP_SEQUENCES_DIR": str(local_sender_sequences),
        "DRIP_SECRET_KEY": "k",
        "DRIP_BASE_URL": "http://drip.test",
        "DRIP_SMTP_URL": smtp_server.url,
    }


def drip(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def subscribe_ada(env: dict[str, str]) -> None:
    result = drip(env, "subscribe", "ada@example.org", "tiny", "--confirmed", "--now", NOW)
    assert result.exit_code == 0, result.output


def test_dispatch_refuses_to_send_naming_each_problem(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    subscribe_ada(env)
    result = drip(env, "dispatch", "--now", NOW)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(
        line.strip().startswith("DRIP_BASE_URL: http://drip.test is not https") for line in lines
    ), result.output
    assert any(
        "'me@localhost'" in line and "sequences/tiny/sequence.yaml" in line for line in lines
    ), result.output
    assert any(line.strip().startswith("DRIP_POSTAL_ADDRESS: not set") for line in lines)
    assert smtp_server.messages == []


def test_allow_unsafe_sending_lets_a_test_relay_get_mail(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    subscribe_ada(env)
    result = drip({**env, "DRIP_ALLOW_UNSAFE_SENDING": "true"}, "dispatch", "--now", NOW)
    assert result.exit_code == 0, result.output
    assert "sending anyway (DRIP_ALLOW_UNSAFE_SENDING): DRIP_BASE_URL" in result.output
    assert [m.subject for m in smtp_server.messages] == ["Welcome, friend"]


def test_worker_refuses_to_start_naming_each_problem(env: dict[str, str]) -> None:
    result = drip(env, "worker")
    assert result.exit_code == 1
    assert "refusing to send through DRIP_SMTP_URL" in result.output
    assert "DRIP_POSTAL_ADDRESS: not set" in result.output


def test_fixed_settings_have_no_problems(tmp_path: Path) -> None:
    settings = load_settings(
        environ={},
        data_dir=tmp_path,
        smtp_url="smtp://relay:587",
        base_url="https://drip.example.org",
        postal_address="1 Main St",
        sender="Ops <ops@example.org>",
    )
    library = load_sequences(TESTS / "sequences")
    assert guardrails.problems(settings, library) == []


def test_the_embedded_default_with_the_outbox_is_not_held_back(
    tmp_path: Path, sqlite_url: str, local_sender_sequences: Path
) -> None:
    env = {
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": sqlite_url,
        "DRIP_SEQUENCES_DIR": str(local_sender_sequences),
        "DRIP_SECRET_KEY": "k",
    }
    subscribe_ada(env)
    result = drip(env, "dispatch", "--now", NOW)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "data" / "outbox").glob("*.eml"))) == 1


def test_the_scheduled_pass_refuses_to_send_while_a_guardrail_fails(
    tmp_path: Path,
    sqlite_url: str,
    smtp_server: SmtpServer,
    local_sender_sequences: Path,
    caplog: pytest.LogCaptureFixture,
    clock: FrozenClock,
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        smtp_url=smtp_server.url,
        sequences_dir=local_sender_sequences,
        allow_unsafe_sending=False,
    )
    svc = build_services(settings, clock)
    try:
        enroll(svc)
        with caplog.at_level(logging.INFO, logger="drip"):
            dispatch_job(svc, svc.dispatcher())
        assert smtp_server.messages == []
        refused = [r for r in caplog.records if r.getMessage().startswith("dispatch refused")]
        assert len(refused) == 1 and refused[0].levelno == logging.ERROR
        assert "me@localhost" in refused[0].fields["problems"]  # type: ignore[attr-defined]
    finally:
        svc.engine.dispose()


def test_dashboard_and_healthz_show_the_problems_even_when_sending_anyway(
    tmp_path: Path,
    sqlite_url: str,
    smtp_server: SmtpServer,
    local_sender_sequences: Path,
    clock: FrozenClock,
) -> None:
    settings = make_settings(
        tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=local_sender_sequences
    )
    assert settings.allow_unsafe_sending
    app = create_app(settings, clock=clock)
    app.config["TESTING"] = True
    try:
        health = app.test_client().get("/healthz").get_json()
        assert health["sending"] == "unsafe"
        assert any(
            p.startswith("DRIP_BASE_URL: http://drip.test is not https") for p in health["problems"]
        )
        add_operator(app.extensions["drip"])
        web = app.test_client()
        log_in(web)
        page = web.get("/admin/").text
        assert "Sending anyway" in page and "me@localhost" in page
    finally:
        app.extensions["drip"].engine.dispose()


# -- drip doctor and DNS ------------------------------------------------------------------------


class DnsServer:
    """Answers TXT questions from a dict on a loopback UDP port; NXDOMAIN for the rest."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = {name.rstrip(".").lower(): text for name, text in records.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            answer = dns.message.make_response(query)
            question = query.question[0]
            text = self.records.get(question.name.to_text().rstrip(".").lower())
            if text is None:
                answer.set_rcode(dns.rcode.NXDOMAIN)
            else:
                answer.answer.append(
                    dns.rrset.from_text(question.name, 60, "IN", "TXT", f'"{text}"')
                )
            self.sock.sendto(answer.to_wire(), peer)

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer(
        {
            "example.org": "v=spf1 include:relay.example.net -all",
            "mail._domainkey.example.org": "v=DKIM1; k=rsa; p=MIIB",
        }
    )
    yield server
    server.stop()


def production_env(env: dict[str, str]) -> dict[str, str]:
    return {
        **env,
        "DRIP_BASE_URL": "https://drip.example.org",
        "DRIP_POSTAL_ADDRESS": "1 Main Street, Springfield",
        "DRIP_SEQUENCES_DIR": str(TESTS / "sequences"),
        "DRIP_DKIM_SELECTOR": "mail",
    }


def test_doctor_prints_every_check_and_fails_on_a_missing_dmarc_record(
    env: dict[str, str], dns_server: DnsServer
) -> None:
    result = drip(production_env(env), "doctor", "--nameserver", f"127.0.0.1:{dns_server.port}")
    lines = result.output.splitlines()
    verdict = {
        line.split(":", 1)[0].split(maxsplit=1)[-1].strip(): line.split()[0] for line in lines
    }
    assert verdict["DRIP_BASE_URL"] == "ok"
    assert verdict["DRIP_POSTAL_ADDRESS"] == "ok"
    assert verdict["sender 'author@example.org' from sequences/tiny/sequence.yaml"] == "ok"
    assert verdict["SPF of example.org"] == "ok"
    assert verdict["DKIM of example.org"] == "ok"
    assert verdict["DMARC of example.org"] == "problem"
    assert "no v=dmarc1 TXT record at _dmarc.example.org" in result.output
    assert result.exit_code == 1


def test_doctor_passes_when_every_record_is_there(env: dict[str, str]) -> None:
    server = DnsServer(
        {
            "example.org": "v=spf1 -all",
            "_dmarc.example.org": "v=DMARC1; p=none",
            "mail._domainkey.example.org": "v=DKIM1; p=MIIB",
        }
    )
    try:
        result = drip(production_env(env), "doctor", "--nameserver", f"127.0.0.1:{server.port}")
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    assert "problem" not in result.output


def test_doctor_says_could_not_look_up_where_dns_does_not_answer(env: dict[str, str]) -> None:
    closed = free_port()
    result = drip(
        production_env(env), "doctor", "--nameserver", f"127.0.0.1:{closed}", "--timeout", "1"
    )
    for record in ("SPF", "DKIM", "DMARC"):
        assert any(
            line.startswith("could not look up") and f"{record} of example.org" in line
            for line in result.output.splitlines()
        ), result.output
    assert result.exit_code == 0  # not knowing is not a problem found


def test_doctor_finds_the_careless_settings(env: dict[str, str]) -> None:
    result = drip(env, "doctor", "--nameserver", f"127.0.0.1:{free_port()}", "--timeout", "1")
    problems = [line for line in result.output.splitlines() if line.startswith("problem")]
    assert len(problems) == 3, result.output
    assert result.exit_code == 1


def test_doctor_says_the_ses_webhook_refuses_everything_until_topics_are_named(
    env: dict[str, str],
) -> None:
    unnamed = drip(env, "doctor", "--nameserver", f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert (
        "off               DRIP_SNS_TOPIC_ARNS: not set: /webhooks/ses refuses every Amazon SES "
        "notification (403) until the SNS topic ARNs of your SES account are named here"
    ) in unnamed.output.splitlines()
    topic = "arn:aws:sns:eu-west-1:123456789012:drip-ses-events"
    named = drip(
        {**env, "DRIP_SNS_TOPIC_ARNS": topic},
        "doctor",
        "--nameserver",
        f"127.0.0.1:{free_port()}",
        "--timeout",
        "1",
    )
    assert f"ok                DRIP_SNS_TOPIC_ARNS: /webhooks/ses accepts {topic}" in named.output


def test_doctor_says_what_to_set_when_nothing_reads_the_reply_address(
    env: dict[str, str],
) -> None:
    args = ("doctor", "--nameserver", f"127.0.0.1:{free_port()}", "--timeout", "1")
    unread = drip({**env, "DRIP_REPLY_ADDRESS": "reply@example.org"}, *args)
    read = drip(
        {
            **env,
            "DRIP_REPLY_ADDRESS": "reply@example.org",
            "DRIP_REPLY_IMAP_URL": "imaps://drip:secret@imap.example.org/INBOX",
        },
        *args,
    )
    without = drip(env, *args)

    warning = next(line for line in unread.output.splitlines() if "DRIP_REPLY_ADDRESS" in line)
    assert warning.startswith("problem")
    assert "nothing reads them" in warning and "DRIP_REPLY_IMAP_URL" in warning
    assert unread.exit_code == 1
    assert (
        "ok                DRIP_REPLY_ADDRESS: replies are read from the mailbox at "
        "imap.example.org"
    ) in read.output.splitlines()
    assert "secret" not in read.output
    assert "DRIP_REPLY_ADDRESS" not in without.output
