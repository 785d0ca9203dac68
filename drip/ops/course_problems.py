"""What the author must fix before readers get what they signed up for, in plain words for
the dashboard: no sequences in the folder, readers in a course whose folder is gone, no
author name. Each names the page that fixes it (`fix`), not a command to run.

Sending for real has its own list (drip.deliverability.guardrails); these hold whether or not drip
sends through a relay, since a fresh install writes to the outbox and must still be told.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from drip.content.authors import is_placeholder
from drip.content.loader import no_sequences
from drip.content.sequences import Library
from drip.store import queries
from drip.store.models import EnrollmentStatus

STILL_WAITING = (EnrollmentStatus.PENDING, EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)


@dataclass(frozen=True)
class CourseProblem:
    message: str
    fix: str  # "sequences" (the Sequences page) or "site" (the Site & author page)


def course_problems(session: Session, library: Library, root: Path) -> list[CourseProblem]:
    """Every problem of the courses a dashboard shows, the worst first."""
    found: list[CourseProblem] = []
    empty = no_sequences(root, library)
    if empty is not None:
        found.append(CourseProblem(f"No sequences found in {root}.", "sequences"))
    found += _orphaned_readers(session, library)
    names = {s.author.name for s in (*library.sequences.values(), *library.held_forms.values())}
    if any(is_placeholder(name) for name in names):
        found.append(
            CourseProblem(
                "The author's name is not set: readers see the emails come from a "
                "stand-in and the lessons signed by nobody.",
                "site",
            )
        )
    return found


def _orphaned_readers(session: Session, library: Library) -> list[CourseProblem]:
    """Readers still waiting for lessons of a course that has no folder any more: nothing
    goes out to them, and nothing else says so."""
    problems = []
    for slug, counts in sorted(queries.counts_by_sequence_and_status(session).items()):
        if slug in library.sequences or slug in library.broken:
            continue
        waiting = sum(counts[status] for status in STILL_WAITING)
        if waiting:
            readers = "1 reader is" if waiting == 1 else f"{waiting:,} readers are"
            problems.append(
                CourseProblem(
                    f"{readers} in the course “{slug}”, which has no folder in the sequences "
                    f"folder: they get nothing until a folder {slug}/ with its "
                    "sequence.yaml is back.",
                    "sequences",
                )
            )
    return problems
