"""CSV import of readers: bad rows are reported by line, good rows are kept.

An import is a background job (`queue_import`, then `run_import` in the worker or in
`drip import` itself): it survives the request that brought the file, shows its progress,
and ends with exact counts of readers added, updated and refused (by line).
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from drip.content import Library
from drip.jobs import DONE, FAILED, QUEUED, RUNNING
from drip.models import ImportJob, Subscriber
from drip.subscriptions import (
    Consent,
    SubscriptionError,
    find_sequence,
    normalize_email,
    subscribe,
)

log = logging.getLogger(__name__)

COLUMNS = ("email", "first_name", "timezone")
CHUNK = 200  # rows per transaction, committed with the job's counts


def read_rows(lines: Iterable[str]) -> Iterable[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; raises SubscriptionError without an email column."""
    reader = csv.DictReader(lines)
    header = [name.strip().lower() for name in reader.fieldnames or []]
    if "email" not in header:
        raise SubscriptionError(
            f"the CSV needs a header row with an 'email' column (columns: {', '.join(COLUMNS)})"
        )
    reader.fieldnames = header
    for row in reader:
        yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}


# -- imports as background jobs -----------------------------------------------------------

MAX_ERRORS = 1_000  # refused lines kept with their reason (the count is always exact)
RETRIES = 30  # a chunk that meets a busy database is rolled back and tried again


def queue_import(
    session: Session,
    library: Library,
    text: str,
    *,
    filename: str,
    sequence: str,
    confirmed: bool,
    source: str,
    who: str,
    now: datetime,
) -> ImportJob:
    """Check the file and keep it as a job for the worker; the caller commits. Raises
    SubscriptionError for an unknown sequence or a file without an email column."""
    find_sequence(library, sequence)
    total = sum(1 for _ in read_rows(text.splitlines(keepends=True)))
    job = ImportJob(
        created_at=now,
        created_by=who,
        filename=filename[:255],
        sequence=sequence,
        confirmed=confirmed,
        source=source[:200],
        csv=text,
        status=QUEUED,
        total=total,
        processed=0,
        added=0,
        updated=0,
        refused=0,
        errors=[],
    )
    session.add(job)
    session.flush()
    return job


def run_import(
    sessions: sessionmaker[Session],
    library: Library,
    job_id: int,
    now: datetime,
    *,
    seconds: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportJob | None:
    """Work through a job from where it stands, CHUNK rows per transaction: the rows and
    the job's counts commit together, so a crash or a busy database loses nothing and
    counts nothing twice. Stops after `seconds` (the next run goes on). Returns the job."""
    started = time.monotonic()
    rows: list[tuple[int, dict[str, str]]] | None = None
    busy = 0  # chunks in a row that met a busy database
    while True:
        with sessions() as session:
            query = select(ImportJob).where(ImportJob.id == job_id)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update()  # another worker waits, then goes on from here
            job = session.scalars(query).first()
            if job is None or job.status in (DONE, FAILED):
                return job
            if rows is None:
                rows = list(read_rows(job.csv.splitlines(keepends=True)))
            chunk = rows[job.processed : job.processed + CHUNK]
            if not chunk:
                job.status, job.finished_at = DONE, now
                session.commit()
                session.expunge(job)
                return job
            job.status = RUNNING
            try:
                _import_chunk(session, library, job, chunk, now)
                session.commit()
            except OperationalError as error:  # "database is locked": undo, try again
                session.rollback()
                busy += 1
                if busy > RETRIES:
                    _fail(sessions, job_id, now, error)
                    return None
                log.info(
                    "import %s: the database is busy (%s); trying the chunk again",
                    job_id,
                    str(error.orig).splitlines()[0],
                )
                time.sleep(0.2 * min(busy, 10))
                continue
            busy = 0
            if progress:
                progress(len(chunk))
        if seconds is not None and time.monotonic() - started > seconds:
            return None


def _fail(sessions: sessionmaker[Session], job_id: int, now: datetime, error: Exception) -> None:
    with sessions() as session:
        job = session.get(ImportJob, job_id)
        if job is not None:
            job.status, job.finished_at = FAILED, now
            job.last_error = f"stopped after {job.processed} rows: {error}"[:2000]
            session.commit()


def _import_chunk(
    session: Session,
    library: Library,
    job: ImportJob,
    chunk: list[tuple[int, dict[str, str]]],
    now: datetime,
) -> None:
    consent = Consent(
        source=job.source,
        text=library.sequences[job.sequence].consent if job.sequence in library.sequences else "",
    )
    errors = list(job.errors or [])
    for line, row in chunk:
        try:
            with session.begin_nested():
                address = normalize_email(row.get("email", ""))
                known = session.scalar(select(Subscriber.id).where(Subscriber.email == address))
                subscribe(
                    session,
                    library,
                    job.sequence,
                    address,
                    now,
                    consent=consent,
                    first_name=row.get("first_name", ""),
                    timezone=row.get("timezone") or None,
                    confirmed=job.confirmed,
                )
            if known is None:
                job.added += 1
            else:
                job.updated += 1
        except SubscriptionError as error:
            job.refused += 1
            if len(errors) < MAX_ERRORS:
                errors.append([line, str(error)])
    job.errors = errors
    job.processed += len(chunk)
