"""Imports are background jobs: they survive the request, go on from where they stopped,
and end with exact counts of readers added, updated and refused (by line), whatever else
the database is doing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from drip.clock import FrozenClock
from drip.imports import queue_import, run_import
from drip.models import ImportJob, Subscriber
from drip.services import Services
from drip.subscriptions import Consent, subscribe
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
            text,
            filename="readers.csv",
            sequence="tiny",
            confirmed=True,
            source="test import",
            who="ops@example.org",
            now=clock(),
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
        done = run_import(services.sessions, services.content.library(), job_id, clock())
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
    job_id = queue(services, csv_of(700), clock)
    first = run_import(
        services.sessions, services.content.library(), job_id, clock(), seconds=0
    )  # one chunk, then the run's time is up
    with services.sessions() as session:
        job = session.get(ImportJob, job_id)
        assert first is None and job is not None
        assert job.status == "running" and job.processed == 200

    done = run_import(services.sessions, services.content.library(), job_id, clock())

    assert done is not None and done.status == "done"
    assert done.added + done.refused == 700 and done.refused == 14
    with services.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 686
