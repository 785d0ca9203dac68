"""The machine under a pass: a dispatch connection that dies, an outbox disk that fails, a
hand-off that comes later than the pass began, a worker clock apart from the database's."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from drip.clock import FrozenClock
from drip.db import make_engine
from drip.dispatch import Outcome, OutcomeStatus
from drip.models import Enrollment
from drip.services import Services, build_services
from drip.subscriptions import Consent, subscribe
from tests.conftest import make_settings, unavailable
from tests.smtp import SmtpServer

CONSENT = Consent(source="test", text="Yes, send me the course.")


def sign_up(svc: Services, *emails: str) -> None:
    with svc.sessions() as session:
        for email in emails:
            subscribe(
                session,
                svc.content.library(),
                "tiny",
                email,
                svc.clock(),
                consent=CONSENT,
                first_name="Ada",
                confirmed=True,
            )
        session.commit()


@pytest.mark.postgres
def test_a_dispatch_connection_killed_mid_pass_raises_its_own_error_not_the_reset(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, postgres_url, smtp_url=smtp_server.url), clock)
    sign_up(svc, "ada@example.org", "bob@example.org", "cy@example.org")
    killer = make_engine(postgres_url, isolation_level="AUTOCOMMIT")
    killed: list[int] = []

    def kill_the_pass(outcome: Outcome) -> None:
        """After the first hand-off, end every other session of this database (the pass's)."""
        if killed:
            return
        with killer.connect() as conn:
            killed.extend(
                conn.scalars(
                    text(
                        "SELECT pg_terminate_backend(pid)::int FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            )

    with pytest.raises(OperationalError) as raised:
        svc.dispatcher().run_pass(clock(), progress=kill_the_pass)
    killer.dispose()
    assert killed
    assert "terminat" in str(raised.value) or "closed" in str(raised.value)
    assert "RESET" not in str(raised.value)
    assert len(smtp_server.messages) == 1


@contextmanager
def tiny_disk(folder: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs at `folder`: a real disk that fills up and can be made read-only."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        unavailable(f"cannot mount a tmpfs for the outbox: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the disk)."""
    filler = folder / "filler.bin"
    with filler.open("wb", buffering=0) as handle, suppress(OSError):
        while True:
            handle.write(b"x" * 512)
    return filler


def attempts_and_statuses(svc: Services) -> list[tuple[int, str | None]]:
    with svc.sessions() as session:
        return [
            (e.attempts, e.status)
            for e in session.scalars(select(Enrollment).order_by(Enrollment.id))
        ]


def test_an_outbox_on_a_full_or_read_only_disk_retries_later_without_using_attempts(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    svc = build_services(settings, clock)
    sign_up(svc, "ada@example.org", "bob@example.org")
    with tiny_disk(settings.outbox_dir) as outbox:
        stale = outbox / ".20260101T000000-9-welcome.eml.part"
        stale.write_bytes(b"half a message")
        os.utime(stale, (time.time() - 3600, time.time() - 3600))
        filler = fill(outbox)
        with caplog.at_level(logging.WARNING):
            report = svc.dispatcher().run_pass(clock())
        assert {o.status for o in report.outcomes} == {OutcomeStatus.RETRYING}
        assert attempts_and_statuses(svc) == [(0, "active"), (0, "active")]
        assert [r.getMessage() for r in caplog.records if "outbox" in r.getMessage()] == [
            f"not sent, the readers wait for the next pass: the outbox {outbox} cannot be "
            "written (No space left on device); drip tries again later"
        ]
        assert sorted(p.name for p in outbox.iterdir()) == ["filler.bin"]  # no .part left

        filler.unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(outbox)], check=True)
        report = svc.dispatcher().run_pass(clock.advance(minutes=1))
        assert {o.status for o in report.outcomes} == {OutcomeStatus.RETRYING}
        assert attempts_and_statuses(svc) == [(0, "active"), (0, "active")]

        subprocess.run(["mount", "-o", "remount,rw", str(outbox)], check=True)
        report = svc.dispatcher().run_pass(clock.advance(minutes=1))
        assert [o.status for o in report.outcomes] == [OutcomeStatus.SENT] * 2
        assert len(list(outbox.glob("*.eml"))) == 2
        assert not list(outbox.glob(".*.part"))
