"""Imports are background jobs: they survive the request, go on from where they stopped,
and end with exact counts of readers added, updated and refused (by line), whatever else
the database is doing."""

from __future__ import annotations

import io
import stat
import threading
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import func, select

from drip.audience.imports import CHUNK, queue_import, run_import
from drip.audience.subscriptions import Consent, SubscriptionError, subscribe
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import ImportJob, Subscriber
from tests.bulk import add_due_readers


def csv_of(rows: int, bad_every: int = 50) -> str:
    lines = ["email,first_name,timezone"]
    for n in range(rows):
        email = f"not an address {n}" if n % bad_every == 7 else f"imported{n}@example.org"
        lines.append(f"{email},Reader {n},Europe/Paris")
    return "\n".join(lines) + "\n"


def queue(svc: Services, text: str, clock: FrozenClock) -> int:
    with svc.sessions() as session:
        job = queue_import(
            session,
            svc.content.library(),
            io.StringIO(text),
            filename="readers.csv",
            sequence="tiny",
            confirmed=True,
            source="test import",
            who="ops@example.org",
            now=clock(),
            data_dir=svc.settings.data_dir,
        )
        session.commit()
        return job.id


@pytest.mark.slow
def test_an_import_while_passes_run_counts_every_row_exactly_once(
    services: Services, clock: FrozenClock, tmp_path: Path
) -> None:
    add_due_readers(services.engine, 300, clock())  # the scheduler has work meanwhile
    with services.sessions() as session:
        subscribe(
            session,
            services.content.library(),
            "tiny",
            "imported3@example.org",
            clock(),
            consent=Consent(source="test", text="yes"),
        )
        session.commit()
    job_id = queue(services, csv_of(2_000), clock)
    stop = threading.Event()

    def passes() -> None:
        while not stop.is_set():
            services.dispatcher().run_pass(clock())

    worker = threading.Thread(target=passes)
    worker.start()
    try:
        done = run_import(
            services.sessions,
            services.content.library(),
            job_id,
            clock(),
            data_dir=services.settings.data_dir,
        )
    finally:
        stop.set()
        worker.join(60)

    assert done is not None and done.status == "done"
    assert (done.total, done.processed) == (2_000, 2_000)
    assert (done.added, done.updated, done.refused) == (1_959, 1, 40)
    assert done.errors[0][0] == 9 and "is not a valid email address" in done.errors[0][1]
    with services.sessions() as session:
        imported = session.scalar(
            select(func.count()).select_from(Subscriber).where(Subscriber.email.like("imported%"))
        )
        assert imported == 1_960


@pytest.mark.slow
def test_an_import_goes_on_from_where_it_stopped(services: Services, clock: FrozenClock) -> None:
    rows = CHUNK + 700
    job_id = queue(services, csv_of(rows), clock)
    first = run_import(
        services.sessions,
        services.content.library(),
        job_id,
        clock(),
        data_dir=services.settings.data_dir,
        seconds=0,
    )  # one chunk, then the run's time is up
    with services.sessions() as session:
        job = session.get(ImportJob, job_id)
        assert first is None and job is not None
        assert job.status == "running" and job.processed == CHUNK

    done = run_import(
        services.sessions,
        services.content.library(),
        job_id,
        clock(),
        data_dir=services.settings.data_dir,
    )

    bad = sum(1 for n in range(rows) if n % 50 == 7)
    assert done is not None and done.status == "done"
    assert done.added + done.refused == rows and done.refused == bad
    with services.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == rows - bad


def peak_of_import(services: Services, text: str, clock: FrozenClock) -> tuple[ImportJob, int]:
    """The job once run, and the most memory Python held while it ran."""
    job_id = queue(services, text, clock)
    tracemalloc.start()
    try:
        done = run_import(
            services.sessions,
            services.content.library(),
            job_id,
            clock(),
            data_dir=services.settings.data_dir,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert done is not None
    return done, peak


def test_an_import_holds_one_chunk_not_the_file_nor_every_row(
    services: Services, clock: FrozenClock
) -> None:
    def fat(rows: int, who: str) -> str:  # 150-byte rows: the file outweighs a chunk
        return (
            csv_of(rows, bad_every=1_000)
            .replace("imported", who)
            .replace("Reader", "Reader " + "x" * 100)
        )

    peak_of_import(services, fat(CHUNK, "warm"), clock)  # caches filled
    _, small = peak_of_import(services, fat(2 * CHUNK, "small"), clock)
    rows = 20 * CHUNK
    text = fat(rows, "imported")
    done, large = peak_of_import(services, text, clock)

    # Ten times the rows, the same memory: the file is read as a stream, a chunk at a
    # time; neither its text (3 MB here) nor every row parsed is ever held.
    assert large < small + len(text) // 2, f"{large:,} bytes for {rows:,} rows, {small:,} for 2k"
    bad = [n for n in range(rows) if n % 1_000 == 7]
    assert (done.added, done.refused) == (rows - len(bad), len(bad))
    assert [line for line, _ in done.errors] == [n + 2 for n in bad]  # by line, header is 1
    assert all("is not a valid email address" in problem for _, problem in done.errors)


def test_the_upload_waits_in_a_private_file_not_in_the_job_row_and_goes_when_done(
    services: Services, clock: FrozenClock
) -> None:
    text = csv_of(CHUNK + 10)
    job_id = queue(services, text, clock)
    with services.sessions() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None and job.csv == "" and job.file
        kept = services.settings.data_dir / job.file
    assert kept.read_text(encoding="utf-8") == text
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700

    run_import(
        services.sessions,
        services.content.library(),
        job_id,
        clock(),
        data_dir=services.settings.data_dir,
        seconds=0,
    )  # one chunk: the file stays for the next run
    assert kept.exists()
    done = run_import(
        services.sessions,
        services.content.library(),
        job_id,
        clock(),
        data_dir=services.settings.data_dir,
    )

    assert done is not None and done.status == "done" and done.added == CHUNK + 10 - 21
    assert not kept.exists()  # the addresses are in the database now, not twice on disk


def test_a_field_over_the_csv_limit_is_refused_by_line_before_anything_is_queued(
    services: Services, clock: FrozenClock
) -> None:
    text = csv_of(3) + f"huge@example.org,{'x' * 200_000},UTC\n"

    with pytest.raises(SubscriptionError, match=r"line 5 of the CSV cannot be read.*field"):
        queue(services, text, clock)

    with services.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_a_nul_byte_far_into_the_upload_is_refused_by_line_and_nothing_is_kept(
    services: Services, clock: FrozenClock
) -> None:
    text = csv_of(5_000)  # about 200 KB: the NUL is read in the fourth 64 KB block
    nul = text.index("imported4000@")
    text = text[:nul] + "\x00" + text[nul:]

    with pytest.raises(SubscriptionError, match=r"line 4002 of the CSV holds a NUL byte"):
        queue(services, text, clock)

    assert list((services.settings.data_dir / "imports").iterdir()) == []
    with services.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_a_job_whose_file_is_gone_fails_and_says_where_it_looked(
    services: Services, clock: FrozenClock
) -> None:
    job_id = queue(services, csv_of(10), clock)
    with services.sessions() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None and job.file
        kept = services.settings.data_dir / job.file
    kept.unlink()  # a worker on another machine, another data folder

    done = run_import(
        services.sessions,
        services.content.library(),
        job_id,
        clock(),
        data_dir=services.settings.data_dir,
    )

    assert done is not None and done.status == "failed" and done.added == 0
    assert str(kept) in (done.last_error or "") and "DRIP_DATA_DIR" in (done.last_error or "")
