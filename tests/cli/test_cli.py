"""The `drip` command: settings from the environment, one-line errors, the everyday commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from drip.cli import cli
from drip.core.config import ConfigError, load_settings
from tests.conftest import TESTS
from tests.smtp import SmtpServer

DRIP = str(Path(sys.executable).with_name("drip"))


@pytest.fixture
def env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    return {
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": sqlite_url,
        "DRIP_SEQUENCES_DIR": str(TESTS / "sequences"),
        "DRIP_SECRET_KEY": "k",
        "DRIP_BASE_URL": "http://drip.test",
    }


def drip(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=stdin, catch_exceptions=False)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "DRIP_DISPATCH_INTERVAL",
            "soon",
            "DRIP_DISPATCH_INTERVAL must be a whole number, got 'soon'",
        ),
        ("DRIP_BATCH_SIZE", "0", "DRIP_BATCH_SIZE must be greater than zero, got '0'"),
        (
            "DRIP_SMTP_URL",
            "mail.example.org",
            "DRIP_SMTP_URL must be a URL starting with smtp:// or smtps://, got 'mail.example.org'",
        ),
        (
            "DRIP_BASE_URL",
            "drip.example.org",
            "DRIP_BASE_URL must be an http(s) URL such as "
            "https://drip.example.org, got 'drip.example.org'",
        ),
    ],
)
def test_malformed_setting_stops_startup_with_one_line_naming_it(
    env: dict[str, str], name: str, value: str, message: str
) -> None:
    result = subprocess.run(
        [DRIP, "status"],
        env={**os.environ, **env, name: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == f"drip: {message}\n"


def test_secret_is_generated_once_outside_the_repository(tmp_path: Path) -> None:
    first = load_settings(environ={"DRIP_DATA_DIR": str(tmp_path)})
    second = load_settings(environ={"DRIP_DATA_DIR": str(tmp_path)})
    assert first.secret_key == second.secret_key and len(first.secret_key) > 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_config_error_is_an_exception_not_an_exit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DRIP_LEASE_SECONDS"):
        load_settings(environ={"DRIP_DATA_DIR": str(tmp_path), "DRIP_LEASE_SECONDS": "-1"})


def test_check_prints_a_summary_per_sequence(env: dict[str, str]) -> None:
    result = drip(env, "check")
    assert result.exit_code == 0
    summary = "tiny: 3 lessons over about 5 days, lead magnet magnet.md, double opt-in"
    assert summary in result.output


def test_check_fails_with_path_and_line(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "seqs" / "broken"
    folder.mkdir(parents=True)
    (folder / "sequence.yaml").write_text("title: Broken\npromise: x\n")
    (folder / "01-a.md").write_text("---\nsubject: A\ndelay: soon\n---\nBody\n")
    result = drip({**env, "DRIP_SEQUENCES_DIR": str(tmp_path / "seqs")}, "check")
    assert result.exit_code == 1
    assert f"{folder}/01-a.md:3: bad delay 'soon'" in result.output


def test_check_of_a_folder_without_sequences_says_so_and_fails(
    env: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "seqs"
    (empty / "notes").mkdir(parents=True)  # a folder, but no sequence.yaml in it
    result = drip({**env, "DRIP_SEQUENCES_DIR": str(empty)}, "check")
    assert result.exit_code == 1
    assert f"no sequences found in {empty}" in result.output


def test_subscribe_then_dispatch_sends_to_the_smtp_server(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    env = {**env, "DRIP_SMTP_URL": smtp_server.url, "DRIP_ALLOW_UNSAFE_SENDING": "true"}
    result = drip(
        env,
        "subscribe",
        "ada@example.org",
        "tiny",
        "--name",
        "Ada",
        "--confirmed",
        "--now",
        "2026-03-02T14:00:00Z",
    )
    assert result.exit_code == 0, result.output
    assert "ada@example.org -> tiny: active (next: welcome" in result.output
    dry = drip(env, "dispatch", "--now", "2026-03-02T14:00:00Z", "--dry-run")
    assert "would-send ada@example.org tiny/welcome" in dry.output
    assert smtp_server.messages == []
    sent = drip(env, "dispatch", "--now", "2026-03-02T14:00:00Z")
    assert "sent       ada@example.org tiny/welcome" in sent.output
    assert [m.subject for m in smtp_server.messages] == ["Welcome, Ada"]
    assert "tiny: 1 active" in drip(env, "status").output


def test_subscribe_rejects_bad_input_clearly(env: dict[str, str]) -> None:
    bad_email = drip(env, "subscribe", "not-an-address", "tiny")
    assert bad_email.exit_code == 1
    assert "'not-an-address' is not a valid email address" in bad_email.output
    unknown = drip(env, "subscribe", "ada@example.org", "nope")
    assert "unknown sequence 'nope' (known: tiny)" in unknown.output
    bad_zone = drip(env, "subscribe", "ada@example.org", "tiny", "--timezone", "Mars/Olympus")
    assert "unknown time zone 'Mars/Olympus'" in bad_zone.output
    assert "tiny: no readers" in drip(env, "status").output


def test_import_keeps_good_rows_and_reports_bad_ones_by_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text(
        "email,first_name,timezone\n"
        "ada@example.org,Ada,Europe/London\n"
        "broken-address,Bob,\n"
        "cy@example.org,Cy,Nowhere/Land\n"
        "di@example.org,Di,\n"
    )
    result = drip(env, "import", str(csv_file), "--sequence", "tiny", "--confirmed")
    assert result.exit_code == 1
    assert f"{csv_file}:3: 'broken-address' is not a valid email address" in result.output
    assert f"{csv_file}:4: unknown time zone 'Nowhere/Land'" in result.output
    assert "imported 2 readers into tiny; 2 rows skipped" in result.output
    assert "tiny: 2 active" in drip(env, "status").output


def test_import_without_email_column_changes_nothing(env: dict[str, str], tmp_path: Path) -> None:
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("mail,name\nada@example.org,Ada\n")
    result = drip(env, "import", str(csv_file), "--sequence", "tiny")
    assert "the CSV needs a header row with an 'email' column" in result.output
    assert "tiny: no readers" in drip(env, "status").output


def test_check_names_a_file_from_where_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run in the project, a problem's file is `sequences/<course>/<file>`: short, and what a
    terminal opens; not the server's whole path."""
    folder = tmp_path / "sequences" / "tiny"
    shutil.copytree(TESTS / "sequences" / "tiny", folder)
    (folder / "01-welcome.md").write_text(
        "---\nsubject: Day 1: start\ndelay: 0\n---\nHello\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["check"], env={"DRIP_SEQUENCES_DIR": "sequences", "DRIP_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert "sequences/tiny/01-welcome.md:2: the subject has a colon" in result.output
    assert str(tmp_path) not in result.output
