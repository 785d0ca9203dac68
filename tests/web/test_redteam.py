"""The red team (tests/redteam.py) against real servers: `drip serve` on SQLite and
gunicorn on PostgreSQL. Every hostile request is refused correctly, none answers 5xx, and
the database does not change."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from drip.mail.links import Links
from tests import redteam
from tests.conftest import TESTS
from tests.jobs.test_processes import DRIP, wait_for
from tests.smtp import free_port

OPERATOR, PASSWORD = "ops@example.org", "a long enough password"
SECRET = "red-team-secret"


def _environment(tmp_path: Path, database_url: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": database_url,
        "DRIP_SEQUENCES_DIR": str(TESTS / "sequences"),
        "DRIP_SECRET_KEY": SECRET,
        "DRIP_BASE_URL": f"http://127.0.0.1:{port}",
        "DRIP_CHECK_EMAIL_DOMAIN": "false",
        "DRIP_ADMIN_PASSWORD": PASSWORD,
    }


def _prepare(env: dict[str, str]) -> None:
    """One reader (subscriber and enrollment 1) and one operator, as the red team expects."""
    for command in (
        ["init"],
        ["subscribe", "ada@example.org", "tiny", "--confirmed"],
        ["admin", "create", OPERATOR],
    ):
        subprocess.run([DRIP, *command], env=env, check=True, capture_output=True, timeout=120)


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, str]]:
    """(port, database URL) of a running server: `drip serve` or gunicorn."""
    kind, database_url = request.param, ""
    if kind == "gunicorn-postgres":
        database_url = str(request.getfixturevalue("postgres_url"))
    else:
        database_url = f"sqlite:///{tmp_path / 'drip.sqlite3'}"
    port = free_port()
    env = _environment(tmp_path, database_url, port)
    _prepare(env)
    if kind == "gunicorn-postgres":
        command = [
            str(Path(sys.executable).with_name("gunicorn")),
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(TESTS.parent),
            "wsgi:app",
        ]
    else:
        command = [DRIP, "serve", "--port", str(port), "--no-scheduler"]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_for(lambda: _serving(port), seconds=60), "the server did not start"
        yield port, database_url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize(
    "served",
    ["serve-sqlite", pytest.param("gunicorn-postgres", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_every_hostile_request_is_refused_and_changes_nothing(served: tuple[int, str]) -> None:
    port, database_url = served
    engine = create_engine(database_url)
    lines: list[str] = []
    try:
        report = redteam.run(
            f"http://127.0.0.1:{port}", SECRET, engine, OPERATOR, PASSWORD, out=lines.append
        )
    finally:
        engine.dispose()
    assert report.tried == len(
        redteam.attacks("http://x", Links(SECRET, "http://x"), OPERATOR, PASSWORD)
    )
    assert report.failures == [], "\n".join(lines)
    assert report.refused == report.tried
