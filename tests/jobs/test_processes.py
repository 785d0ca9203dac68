"""`drip serve` and `drip worker` as real processes: the schedule runs and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from drip.app import create_app
from drip.core.clock import FrozenClock
from drip.services import Services
from tests.conftest import TESTS, make_settings
from tests.smtp import SmtpServer, free_port

DRIP = str(Path(sys.executable).with_name("drip"))


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> bool:
    """Poll a real process's visible effect; the clock under test is never slept on."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def env(tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer) -> dict[str, str]:
    return {
        **os.environ,
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": sqlite_url,
        "DRIP_SEQUENCES_DIR": str(TESTS / "sequences"),
        "DRIP_SECRET_KEY": "k",
        "DRIP_SMTP_URL": smtp_server.url,
        "DRIP_ALLOW_UNSAFE_SENDING": "true",
        "DRIP_DISPATCH_INTERVAL": "1",
    }


def subscribe(env: dict[str, str]) -> None:
    subprocess.run(
        [DRIP, "subscribe", "ada@example.org", "tiny", "--name", "Ada", "--confirmed"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_worker_sends_on_schedule_and_stops_on_sigterm(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    subscribe(env)
    worker = subprocess.Popen([DRIP, "worker"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(smtp_server.messages) == 1)
        worker.send_signal(signal.SIGTERM)
        # Its stderr is read as it goes (communicate): a worker that logs more than a pipe
        # holds would otherwise block on it and never stop; a loaded machine may take a
        # while to finish the pass in flight.
        _, stderr = worker.communicate(timeout=60)
        assert worker.returncode == 0, stderr
    finally:
        worker.kill()
    assert [m.subject for m in smtp_server.messages] == ["Welcome, Ada"]
    passes = [line for line in stderr.splitlines() if 'msg="dispatch pass"' in line]
    assert len(passes) == 1  # one line for the pass that sent; none for the idle ones
    assert passes[0].startswith("time=") and " level=info logger=drip.jobs.worker " in passes[0]
    assert passes[0].endswith(" sent=1")


def test_second_worker_on_sqlite_refuses_and_says_why(env: dict[str, str]) -> None:
    first = subprocess.Popen([DRIP, "worker"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        data = Path(env["DRIP_DATABASE_URL"].removeprefix("sqlite:///"))
        lock = Path(f"{data}.dispatch.lock")
        assert wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid))
        second = subprocess.run(
            [DRIP, "worker"], env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1
        assert f"another drip worker (pid {first.pid}) is already dispatching" in second.stderr
        assert "use PostgreSQL" in second.stderr
    finally:
        first.terminate()
        first.communicate(timeout=60)  # its stderr drained, as above


def test_serve_runs_the_web_and_the_scheduler_in_one_process(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    subscribe(env)
    port = free_port()
    server = subprocess.Popen(
        [DRIP, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return b'"database":"ok"' in r.read().replace(b" ", b"")
        except OSError:
            return False

    try:
        assert wait_for(healthy)
        assert wait_for(lambda: len(smtp_server.messages) == 1)
    finally:
        server.terminate()
        server.communicate(timeout=60)  # its output drained, as above


def test_healthz_reports_the_last_pass(
    client: FlaskClient, services: Services, clock: FrozenClock
) -> None:
    assert client.get("/healthz").get_json()["last_pass_at"] is None
    services.dispatcher().run_pass(clock())
    clock.advance(seconds=90)
    body = client.get("/healthz").get_json()
    assert body["database"] == "ok"
    assert body["last_pass_age_seconds"] == 90


def test_healthz_answers_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = create_app(settings).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"
