"""CSV import of readers: bad rows are reported by line, good rows are kept."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from drip.content import Library
from drip.subscriptions import Consent, SubscriptionError, find_sequence, subscribe

COLUMNS = ("email", "first_name", "timezone")
CHUNK = 200  # rows per commit


@dataclass
class ImportReport:
    added: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def read_rows(lines: Iterable[str]) -> Iterable[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; raises SubscriptionError without an email column."""
    reader = csv.DictReader(lines)
    header = [name.strip().lower() for name in reader.fieldnames or []]
    if "email" not in header:
        raise SubscriptionError("the CSV needs a header row with an 'email' column "
                                f"(columns: {', '.join(COLUMNS)})")
    reader.fieldnames = header
    for row in reader:
        yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}


def import_readers(sessions: sessionmaker[Session], library: Library, rows: Iterable[
        tuple[int, dict[str, str]]], slug: str, now: datetime, *, consent: Consent,
        confirmed: bool, progress: Callable[[int], None] | None = None) -> ImportReport:
    """Subscribe each row; each bad row is rolled back alone and reported by its line."""
    find_sequence(library, slug)
    report = ImportReport()
    with sessions() as session:
        for count, (line, row) in enumerate(rows, start=1):
            try:
                with session.begin_nested():
                    subscribe(session, library, slug, row.get("email", ""), now,
                              consent=consent, first_name=row.get("first_name", ""),
                              timezone=row.get("timezone") or None, confirmed=confirmed)
                report.added += 1
            except SubscriptionError as error:
                report.errors.append((line, str(error)))
            if count % CHUNK == 0:
                session.commit()
            if progress:
                progress(1)
        session.commit()
    return report
