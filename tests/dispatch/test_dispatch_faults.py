"""The machine under a pass: a dispatch connection that dies, an outbox disk that fails, a
hand-off that comes later than the pass began, a worker clock apart from the database's."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from drip.app import create_app
from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock, as_utc
from drip.dispatch import Outcome, OutcomeStatus
from drip.mail.transports import SmtpTransport
from drip.services import Services, build_services
from drip.store.db import make_engine
from drip.store.models import Delivery, Enrollment
from tests.conftest import TESTS, make_settings, next_due, unavailable
from tests.smtp import AfterHandOff, SmtpServer

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


def two_minute_course(tmp_path: Path) -> Path:
    """The tiny course with lesson three two minutes after lesson two."""
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences" / "tiny", root / "tiny")
    third = root / "tiny" / "03-third.md"
    third.write_text(third.read_text().replace("delay: 3d", "delay: 2m"))
    return root


def test_a_delay_counts_from_the_hand_off_not_from_the_start_of_the_pass(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    def slow_relay(recipient: str) -> None:
        clock.advance(seconds=40)  # each hand-off takes the relay 40 s

    svc = build_services(
        make_settings(
            tmp_path,
            backend_url,
            smtp_url=smtp_server.url,
            sequences_dir=two_minute_course(tmp_path),
        ),
        clock,
        lambda: AfterHandOff(SmtpTransport(smtp_server.url), slow_relay),
    )
    sign_up(svc, "ada@example.org", "bob@example.org")
    svc.dispatcher().run_pass(clock())  # the welcome
    start = next_due(svc)
    assert start is not None
    clock.set(start)
    svc.dispatcher().run_pass(start)  # lesson two, 40 s and 80 s into the pass
    with svc.sessions() as session:
        rows = session.execute(
            select(Delivery.sent_at, Enrollment.due_at, Enrollment.next_lesson)
            .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
            .where(Delivery.lesson == "second")
            .order_by(Delivery.sent_at)
        ).all()
    assert [as_utc(r.sent_at) - start for r in rows] == [timedelta(seconds=s) for s in (40, 80)]
    for row in rows:
        assert row.next_lesson == "third"
        assert as_utc(row.due_at) - as_utc(row.sent_at) == timedelta(minutes=2)


@pytest.mark.postgres
def seconds_in(message: str, before: str, after: str) -> float:
    """The number of seconds a clock message gives between `before` and `after`: the skew
    is measured, so it is 600 s minus the time the test took to get there (599.9 on a
    loaded host), never exactly what the test set."""
    found = re.search(re.escape(before) + r"([0-9.]+)" + re.escape(after), message)
    assert found, message
    return float(found.group(1))


def test_a_worker_whose_clock_is_off_says_so_in_its_log_and_in_healthz(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FrozenClock(datetime.now(UTC) + timedelta(minutes=10))
    settings = make_settings(tmp_path, postgres_url)
    svc = build_services(settings, clock)
    dispatcher = svc.dispatcher()
    with caplog.at_level(logging.INFO, logger="drip.core.skew"):
        for _ in range(3):
            skew = dispatcher.check_clock()
            assert skew is not None and abs(skew - timedelta(minutes=10)) < timedelta(seconds=5)
        clock.set(datetime.now(UTC))
        assert abs(dispatcher.check_clock() or timedelta(hours=1)) < timedelta(seconds=5)
    said = [r.getMessage() for r in caplog.records if r.name == "drip.core.skew"]
    assert len(said) == 2  # once while it is off (not at every pass), once when it is back
    assert abs(seconds_in(said[0], "this worker's clock is ", " s ahead of") - 600) < 5
    assert "s ahead of the database's" in said[0] and "sync it" in said[0]
    assert said[1] == "this worker's clock is back in step with the database's"

    clock.set(datetime.now(UTC) - timedelta(minutes=10))
    health = create_app(settings, clock=clock).test_client().get("/healthz").get_json()
    assert -605 < health["clock_skew_seconds"] < -595
    assert len(health["clock_problems"]) == 1
    assert abs(seconds_in(health["clock_problems"][0], "this server's clock is ", " s ") - 600) < 5
    assert "behind the database's" in health["clock_problems"][0]


def test_healthz_on_sqlite_has_no_database_clock_to_compare_with(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    health = create_app(settings, clock=clock).test_client().get("/healthz").get_json()
    assert health["clock_skew_seconds"] is None and health["clock_problems"] == []
