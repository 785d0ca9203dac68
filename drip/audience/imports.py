"""CSV import of readers: bad rows are reported by line, good rows are kept.

An import is a background job (`queue_import`, then `run_import` in the worker or in
`drip import` itself): it survives the request that brought the file, shows its progress,
and ends with exact counts of readers added, updated and refused (by line).
"""

from __future__ import annotations

import csv
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, defer, sessionmaker

from drip.audience.import_rows import NewReader, insert_new_readers, new_reader
from drip.audience.subscriptions import Consent, SubscriptionError, find_sequence, subscribe
from drip.content.sequences import Library
from drip.core.files import create_private_file
from drip.store.jobs import DONE, FAILED, QUEUED, RUNNING
from drip.store.models import ImportJob, Subscriber

log = logging.getLogger(__name__)

COLUMNS = ("email", "first_name", "timezone")
CHUNK = 1_000  # rows per transaction, committed with the job's counts
_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")


def read_rows(lines: Iterable[str]) -> Iterable[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row, as they are read; raises SubscriptionError
    without an email column or for a line the csv module cannot read."""
    reader = csv.DictReader(lines)
    header = [name.strip().lower() for name in reader.fieldnames or []]
    if "email" not in header:
        raise SubscriptionError(
            f"the CSV needs a header row with an 'email' column (columns: {', '.join(COLUMNS)})"
        )
    reader.fieldnames = header
    try:
        for row in reader:
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}
    except csv.Error as error:  # a field over csv.field_size_limit(), a stray NUL...
        raise SubscriptionError(
            f"line {reader.reader.line_num} of the CSV cannot be read ({error}); "
            "nothing was imported"
        ) from None


# -- imports as background jobs -----------------------------------------------------------

MAX_ERRORS = 1_000  # refused lines kept with their reason (the count is always exact)
RETRIES = 30  # a chunk that meets a busy database is rolled back and tried again
IMPORTS = "imports"  # the folder of the data dir that keeps the files of unfinished jobs


def queue_import(
    session: Session,
    library: Library,
    upload: TextIO,
    *,
    filename: str,
    sequence: str,
    confirmed: bool,
    source: str,
    who: str,
    now: datetime,
    data_dir: Path,
) -> ImportJob:
    """Check the file and keep it as a job for the worker; the caller commits. The upload
    (opened with newline="") is copied as it is read to a private file under `data_dir`
    (imports/), not into the job's row, which every chunk updates. Raises
    SubscriptionError for an unknown sequence, a file without an email column or a line
    that cannot be read (a field over 128 KB, say)."""
    find_sequence(library, sequence)
    name = f"{IMPORTS}/{now:%Y%m%d}-{secrets.token_hex(8)}.csv"  # unguessable, never reused
    try:
        total = _keep(upload, data_dir / name)
    except Exception:  # a refused file, one that is not UTF-8: nothing is kept
        (data_dir / name).unlink(missing_ok=True)
        raise
    job = ImportJob(
        created_at=now,
        created_by=who,
        filename=filename[:255],
        sequence=sequence,
        confirmed=confirmed,
        source=source[:200],
        csv="",
        file=name,
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


def _keep(upload: TextIO, path: Path) -> int:
    """Copy the upload to a new 0600 file a block at a time; the number of data rows."""
    create_private_file(path)
    lines = 0
    with open(path, "w", encoding="utf-8", newline="") as kept:
        for block in iter(lambda: upload.read(1 << 16), ""):
            if (nul := block.find("\x00")) >= 0:  # PostgreSQL cannot store it; no CSV needs it
                line = lines + block.count("\n", 0, nul) + 1
                raise SubscriptionError(
                    f"line {line} of the CSV holds a NUL byte; nothing was imported"
                )
            lines += block.count("\n")
            kept.write(block)
    with open(path, encoding="utf-8", newline="") as rows:
        return sum(1 for _ in read_rows(rows))


def run_import(
    sessions: sessionmaker[Session],
    library: Library,
    job_id: int,
    now: datetime,
    *,
    data_dir: Path,
    seconds: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportJob | None:
    """Work through a job from where it stands, CHUNK rows per transaction: the rows and
    the job's counts commit together, so a crash or a busy database loses nothing and
    counts nothing twice. Stops after `seconds` (the next run goes on). Returns the job.

    The file is read as a stream and its rows parsed as they are reached, CHUNK at a
    time: memory holds one chunk, whatever the size of the file."""
    with ExitStack() as files:
        return _run(sessions, library, job_id, now, data_dir, files, seconds, progress)


def _run(
    sessions: sessionmaker[Session],
    library: Library,
    job_id: int,
    now: datetime,
    data_dir: Path,
    files: ExitStack,
    seconds: float | None,
    progress: Callable[[int], None] | None,
) -> ImportJob | None:
    started = time.monotonic()
    rows: Iterator[tuple[int, dict[str, str]]] | None = None
    chunk: list[tuple[int, dict[str, str]]] = []
    busy = 0  # chunks in a row that met a busy database
    while True:
        with sessions() as session:
            query = select(ImportJob).options(defer(ImportJob.csv)).where(ImportJob.id == job_id)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update()  # another worker waits, then goes on from here
            job = session.scalars(query).first()
            if job is None or job.status in (DONE, FAILED):
                return job
            if rows is None:
                try:
                    rows = _rows_from(session, job, data_dir, files)
                except FileNotFoundError as error:  # a worker with another data folder
                    _file_gone(job, error, now)
                    session.commit()
                    return job
            if not busy:
                chunk = list(islice(rows, CHUNK))
            if not chunk:
                job.status, job.finished_at = DONE, now
                session.commit()
                session.expunge(job)
                _forget_file(data_dir, job)
                return job
            job.status = RUNNING
            try:
                _import_chunk(session, library, job, chunk, now)
                session.commit()
            except OperationalError as error:  # "database is locked": undo, try again
                session.rollback()
                busy += 1
                if busy > RETRIES:
                    _fail(sessions, job_id, now, error, data_dir)
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


def _rows_from(
    session: Session, job: ImportJob, data_dir: Path, files: ExitStack
) -> Iterator[tuple[int, dict[str, str]]]:
    """The job's rows after those already processed, parsed as they are asked for: from
    its file, read as a stream, or from its row for a job queued before files (0021)."""
    if job.file:
        lines: Iterable[str] = files.enter_context(
            open(data_dir / job.file, encoding="utf-8", newline="")  # noqa: SIM115 (closed by files)
        )
    else:
        lines = lines_of(session.scalar(select(ImportJob.csv).where(ImportJob.id == job.id)) or "")
    return islice(read_rows(lines), job.processed, None)


def _file_gone(job: ImportJob, error: FileNotFoundError, now: datetime) -> None:
    job.status, job.finished_at = FAILED, now
    job.last_error = (
        f"the uploaded file {error.filename} is gone: the web and the worker must share "
        "the data folder (DRIP_DATA_DIR); upload it again"
    )[:2000]


def _forget_file(data_dir: Path, job: ImportJob) -> None:
    """A finished job's file goes: its counts and refused lines stay in the row."""
    if job.file:
        (data_dir / job.file).unlink(missing_ok=True)


def lines_of(text: str) -> Iterator[str]:
    """The lines of `text` with their endings (CR LF, LF or CR), one at a time:
    `splitlines` would hold a list of every line. The csv module joins a quoted field's
    lines itself."""
    for match in _LINE.finditer(text):
        yield match.group()


def _fail(
    sessions: sessionmaker[Session], job_id: int, now: datetime, error: Exception, data_dir: Path
) -> None:
    with sessions() as session:
        job = session.get(ImportJob, job_id)
        if job is not None:
            job.status, job.finished_at = FAILED, now
            job.last_error = f"stopped after {job.processed} rows: {error}"[:2000]
            session.commit()
            _forget_file(data_dir, job)  # a failed job is never taken up again


def _import_chunk(
    session: Session,
    library: Library,
    job: ImportJob,
    chunk: list[tuple[int, dict[str, str]]],
    now: datetime,
) -> None:
    """One chunk: readers new to drip go in with a few multi-row INSERTs; a known address
    (or one seen earlier in the chunk) goes through `subscribe`, as a sign-up would."""
    try:
        sequence = find_sequence(library, job.sequence)
    except SubscriptionError as error:  # the course went away: every row says why
        _refuse(job, [(line, str(error)) for line, _ in chunk])
        job.processed += len(chunk)
        return
    consent = Consent(source=job.source, text=sequence.consent)
    refused: list[tuple[int, str]] = []
    readers: list[NewReader] = []
    for line, row in chunk:
        try:
            readers.append(new_reader(sequence, row, line))
        except SubscriptionError as error:
            refused.append((line, str(error)))
    seen = _known(session, [reader.email for reader in readers])
    fresh: list[NewReader] = []
    again: list[NewReader] = []
    for reader in readers:
        (again if reader.email in seen else fresh).append(reader)
        seen.add(reader.email)
    try:
        with session.begin_nested():
            insert_new_readers(session, sequence, fresh, now, consent, confirmed=job.confirmed)
        job.added += len(fresh)
    except IntegrityError:  # a sign-up took one of the addresses meanwhile: one by one
        again = sorted(again + fresh, key=lambda reader: reader.line)
    for reader in again:
        try:
            with session.begin_nested():
                known = session.scalar(
                    select(Subscriber.id).where(Subscriber.email == reader.email)
                )
                subscribe(
                    session,
                    library,
                    job.sequence,
                    reader.email,
                    now,
                    consent=consent,
                    first_name=reader.first_name,
                    timezone=reader.timezone,
                    confirmed=job.confirmed,
                )
            if known is None:
                job.added += 1
            else:
                job.updated += 1
        except SubscriptionError as error:
            refused.append((reader.line, str(error)))
    _refuse(job, refused)
    job.processed += len(chunk)


def _refuse(job: ImportJob, refused: list[tuple[int, str]]) -> None:
    """Count refused rows; keep the first MAX_ERRORS with their reasons, by line."""
    job.refused += len(refused)
    errors = list(job.errors or [])
    room = MAX_ERRORS - len(errors)
    if room > 0 and refused:
        job.errors = errors + [[line, message] for line, message in sorted(refused)[:room]]


def _known(session: Session, emails: list[str]) -> set[str]:
    """Which of these (normalised) addresses drip already has."""
    wanted = sorted(set(emails))
    if not wanted:
        return set()
    return set(session.scalars(select(Subscriber.email).where(Subscriber.email.in_(wanted))))
