"""A newcomer's first commands: links that follow the port `drip serve` answers on, one line
(never a traceback) for a database drip cannot use, and a mistyped path that stays mistyped
instead of becoming an empty site with a new admin password."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from tests.conftest import TESTS
from tests.jobs.test_processes import DRIP, wait_for
from tests.smtp import free_port

CLOSED_PORT_URL = "postgresql://drip@127.0.0.1:{port}/drip"


def environment(tmp_path: Path, database_url: str, **more: str) -> dict[str, str]:
    """The process's environment with no DRIP_* setting but these (no DRIP_BASE_URL)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DRIP_")}
    return {
        **env,
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": database_url,
        "DRIP_SEQUENCES_DIR": str(TESTS / "sequences"),
        "DRIP_SECRET_KEY": "k",
        "DRIP_CHECK_EMAIL_DOMAIN": "false",
        "DRIP_DISPATCH_INTERVAL": "1",
        **more,
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DRIP, *args], env=env, capture_output=True, text=True, timeout=60)


@contextmanager
def serving(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[str]]:
    server = subprocess.Popen(
        [DRIP, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            return True
    except OSError:
        return False


def test_serve_without_a_base_url_links_every_email_to_the_port_it_serves(
    tmp_path: Path, sqlite_url: str
) -> None:
    env, port = environment(tmp_path, sqlite_url), free_port()
    outbox = tmp_path / "data" / "outbox"
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with serving(env, port) as server:
        assert wait_for(lambda: _answers(port)), "drip serve did not start"
        body = json.dumps({"email": "ada@example.org", "sequence": "tiny", "consent": True})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/subscriptions",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 202
        assert wait_for(lambda: any(outbox.glob("*.eml")))
        message = next(outbox.glob("*.eml")).read_text().replace("=\n", "").replace("=3D", "=")
        confirm = re.search(rf"http://127\.0\.0\.1:{port}/confirm/[A-Za-z0-9_.\-]+", message)
        assert confirm, "the confirmation links elsewhere"
        with browser.open(confirm[0], timeout=10) as page:
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.read().decode())
        assert token
        form = urllib.parse.urlencode({"csrf_token": token[1]}).encode()
        with browser.open(confirm[0], data=form, timeout=10) as page:
            youre_in = page.read().decode()
    stdout, _ = server.communicate()
    assert "127.0.0.1:8000" not in message
    assert f'href="http://127.0.0.1:{port}/magnet/' in youre_in
    assert f'href="http://127.0.0.1:{port}/preferences/' in youre_in
    assert "127.0.0.1:8000" not in youre_in
    assert f"links in email start with http://127.0.0.1:{port};" in stdout


@pytest.mark.parametrize("command", ["status", "serve", "dispatch", "worker"])
def test_an_unreachable_postgresql_is_one_line_naming_where_and_the_setting(
    tmp_path: Path, command: str
) -> None:
    port = free_port()  # nothing listens there
    result = run(environment(tmp_path, CLOSED_PORT_URL.format(port=port)), command)
    assert result.returncode == 1
    assert result.stderr == (
        f"drip: cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused; "
        "check DRIP_DATABASE_URL\n"
    )


@pytest.mark.parametrize(
    ("command", "url"),
    [
        ("status", "postgresql+nosuchdriver://drip@127.0.0.1/drip"),
        ("serve", "sqlite:relative/drip.sqlite3"),
        ("dispatch", "postgresql+psycopg2://drip@127.0.0.1/drip"),
        ("worker", "sqlite:relative/drip.sqlite3"),
    ],
)
def test_a_database_url_no_driver_can_use_is_one_line_naming_the_setting(
    tmp_path: Path, command: str, url: str
) -> None:
    result = run(environment(tmp_path, url), command)
    assert result.returncode == 1
    assert result.stderr.startswith(f"drip: cannot use the database URL {url!r} (")
    assert result.stderr.endswith("; check DRIP_DATABASE_URL\n")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("command", ["status", "serve", "worker", "subscribe"])
def test_an_empty_sqlite_file_says_it_has_no_drip_tables_and_gets_none(
    tmp_path: Path, command: str
) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    args = [command, "ada@example.org", "tiny"] if command == "subscribe" else [command]
    result = run(environment(tmp_path, f"sqlite:///{empty}"), *args)
    assert result.returncode == 1
    assert result.stderr == (
        "drip: this database has no drip tables: run `drip init` "
        f"(DRIP_DATABASE_URL sqlite:///{empty})\n"
    )
    with closing(sqlite3.connect(empty)) as still:
        assert still.execute("SELECT name FROM sqlite_master").fetchall() == []
    assert not (tmp_path / "data" / "first-admin-password").exists()


@pytest.mark.parametrize("url", ["postgresql+nosuchdriver://x@h/d", "sqlite:nothing"])
def test_commands_that_need_no_database_work_whatever_its_url_says(
    tmp_path: Path, url: str
) -> None:
    result = run(environment(tmp_path, url), "check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("tiny: 3 lessons")


def test_serve_on_a_mistyped_sqlite_path_creates_nothing_and_says_run_init(
    tmp_path: Path, sqlite_url: str
) -> None:
    real = Path(sqlite_url.removeprefix("sqlite:///"))
    typo = real.with_name("drpi.sqlite3")
    password = tmp_path / "data" / "first-admin-password"
    env = environment(tmp_path, sqlite_url)
    with serving(env, port := free_port()):
        assert wait_for(lambda: _answers(port) and password.exists())
    first = password.read_text()

    result = run({**env, "DRIP_DATABASE_URL": f"sqlite:///{typo}"}, "serve", "--port", "9")

    assert result.returncode == 1
    assert result.stderr == f"drip: no drip database at {typo}: run `drip init` first\n"
    assert sorted(p.name for p in typo.parent.glob("drpi*")) == []
    assert password.read_text() == first


def test_the_first_admin_password_file_is_never_replaced(tmp_path: Path, sqlite_url: str) -> None:
    password = tmp_path / "data" / "first-admin-password"
    password.parent.mkdir(mode=0o700)
    password.write_text("the password someone still uses\n")
    env = environment(tmp_path, sqlite_url)
    with serving(env, port := free_port()) as server:
        assert wait_for(lambda: _answers(port))
    _, stderr = server.communicate()
    assert password.read_text() == "the password someone still uses\n"
    assert f"{password} is kept as it is" in stderr
    assert "`drip admin create you@example.org`" in stderr


def test_a_sqlite_url_naming_a_file_that_is_no_database_says_so_and_leaves_it(
    tmp_path: Path,
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, and never to become one\n" * 200)
    before = notes.read_bytes()
    result = run(environment(tmp_path, f"sqlite:///{notes}"), "serve", "--port", "9")
    assert result.returncode == 1
    assert result.stderr == (
        f"drip: sqlite:///{notes} is not a database (file is not a database): "
        "check DRIP_DATABASE_URL\n"
    )
    assert notes.read_bytes() == before


@pytest.mark.parametrize(("args", "port"), [((), "8000"), (("PORT=8123",), "8123")])
def test_make_run_serves_on_the_port_it_is_given(args: tuple[str, ...], port: str) -> None:
    outer = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")  # under `make test`, make's own notes join in
    plan = subprocess.run(
        ["make", "--no-print-directory", "--dry-run", "--always-make", "run", *args],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k not in outer},
    )
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines()[-2:] == [
        ".venv/bin/drip init",
        f".venv/bin/drip serve --port {port}",
    ]
