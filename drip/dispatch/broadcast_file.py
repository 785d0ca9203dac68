"""A broadcast as a file: Markdown with front matter like a lesson's, plus its audience:

    ---
    subject: "A new post: the interview day, hour by hour"
    preheader: "What happens from the hotel lobby to the thank-you note."
    to: [interview-questions, networking-tips]
    readers: both          # active, completed, or both (the default)
    tags: [has-dates]      # optional: only readers with one of these tags
    segment: exam-soon     # optional: only the readers of this segment (drip.audience.segments)
    engagement: engaged    # engaged readers only (the default), or all (quiet ones too)
    ---

The same fields come from the admin's form and the API's JSON; `broadcast_from` checks all
three ways in alike, every problem at once. `as_file` writes a kept broadcast back out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drip.audience.tags import TagError, clean_tag
from drip.content.front_matter import FrontMatterError, parse_front_matter
from drip.content.lessons import check_variables
from drip.content.sequences import Library, Problem
from drip.dispatch.broadcast_variants import read_test
from drip.store.models import Broadcast, EnrollmentStatus

KEYS = frozenset({"subject", "preheader", "to", "readers", "tags", "segment", "engagement"})
ENGAGEMENT = ("engaged", "all")  # `engagement:`: engaged readers only (the default), or all
READERS = {
    "active": (EnrollmentStatus.ACTIVE,),
    "completed": (EnrollmentStatus.COMPLETED,),
    "both": (EnrollmentStatus.ACTIVE, EnrollmentStatus.COMPLETED),
}
READER_WORDS = {  # what `readers:` means, as the admin says it
    "both": "active and finished readers",
    "active": "readers still in the course",
    "completed": "readers who finished it",
}
VARIABLES = frozenset({"first_name", "unsubscribe_url", "preferences_url"})


class BroadcastError(ValueError):
    """A broadcast file that cannot be sent; `problems` say what and where."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class BroadcastFile:
    name: str
    subject: str
    preheader: str
    body: str
    to: tuple[str, ...]
    readers: str
    tags: tuple[str, ...]
    segment: str = ""  # a segment's name: only its readers, among those of `to`
    engagement: str = "engaged"  # or "all": quiet readers too (never the gone)
    test: dict[str, Any] = field(default_factory=dict)  # variants: a test of the subject

    def audience(self) -> dict[str, Any]:
        audience: dict[str, Any] = {
            "to": list(self.to),
            "readers": self.readers,
            "tags": list(self.tags),
            "engagement": self.engagement,
        }
        if self.segment:
            audience["segment"] = self.segment
        audience.update(self.test)  # drip.dispatch.broadcast_variants
        return audience


def read_broadcast(path: Path, library: Library) -> BroadcastFile:
    """The file, checked against the sequences there are; raises BroadcastError."""
    return parse_broadcast(path.read_text(encoding="utf-8"), path, library)


def parse_broadcast(text: str, path: Path, library: Library) -> BroadcastFile:
    """A broadcast's Markdown with front matter (a file, or one uploaded in the admin);
    `path` names it in the problems and its stem is the broadcast's name."""
    missing = "a broadcast starts with front matter between --- lines (subject, to, ...)"
    try:
        parsed = parse_front_matter(text, path, missing=missing)
    except FrontMatterError as error:
        raise BroadcastError([error.problem]) from None
    return broadcast_from(parsed.meta, parsed.body, library, path=path, body_line=parsed.body_line)


def broadcast_from(
    meta: dict[str, Any],
    body: str,
    library: Library,
    *,
    path: Path,
    body_line: int = 1,
    name: str | None = None,
) -> BroadcastFile:
    """The broadcast from its fields (front matter, the admin's form, the API's JSON), with
    every problem at once; one check for all three ways in."""
    test, problems = read_test(meta, path, KEYS)  # unknown keys too
    subject = str(meta.get("subject") or "").strip()
    if not subject:
        problems.append(Problem(path, 2, "missing subject"))
    segment = str(meta.get("segment") or "").strip().lower()
    to = _to(meta.get("to"), segment, library, path, problems)
    readers = str(meta.get("readers") or "both")
    if readers not in READERS:
        problems.append(Problem(path, 2, "readers is active, completed or both"))
    tags = _tags(meta.get("tags") or [], path, problems)
    engagement = str(meta.get("engagement") or "engaged")
    if engagement not in ENGAGEMENT:
        problems.append(Problem(path, 2, "engagement is engaged (the default) or all"))
    problems += check_variables(body, VARIABLES, path, body_line)
    if not body.strip():
        problems.append(Problem(path, body_line, "the broadcast has no body"))
    if problems:
        raise BroadcastError(problems)
    return BroadcastFile(
        name or path.stem,
        subject,
        str(meta.get("preheader") or "").strip(),
        body,
        to,
        readers,
        tags,
        segment,
        engagement,
        test,
    )


def _to(
    raw_to: Any, segment: str, library: Library, path: Path, problems: list[Problem]
) -> tuple[str, ...]:
    """`to:`, one sequence or a list, each one the library can send; with none, a segment's
    readers in whichever course."""
    to: tuple[Any, ...] = ()
    if isinstance(raw_to, str | list | tuple | None):
        to = tuple([raw_to] if isinstance(raw_to, str) else raw_to or [])
    else:  # a number or a mapping: said, never a crash
        problems.append(Problem(path, 2, "to: a sequence or a list of sequences"))
    if not to and segment:
        to = tuple(sorted(library.sequences))  # the segment's readers, in whichever course
    if not to:
        problems.append(
            Problem(path, 2, "missing to: the sequence(s) whose readers get it (or a segment)")
        )
    known = ", ".join(sorted(library.sequences))
    problems += [
        Problem(path, 2, f"to: no usable sequence {slug!r} (known: {known})")
        for slug in to
        if library.get(str(slug)) is None
    ]
    return tuple(str(slug) for slug in to)


def _tags(raw: Any, path: Path, problems: list[Problem]) -> tuple[str, ...]:
    """`tags:`, one or a list, each a tag drip accepts."""
    tags = tuple(
        str(tag).strip().lower()
        for tag in (raw if isinstance(raw, list) else [raw])
        if str(tag).strip()
    )
    for tag in tags:
        try:
            clean_tag(tag)
        except TagError as error:
            problems.append(Problem(path, 2, f"tags: {error}"))
    return tags


def as_file(broadcast: Broadcast) -> str:
    """The broadcast as the file `drip broadcast send` takes: what the audit log keeps
    before and after an edit, so a diff shows the subject, the audience and the body."""
    meta: dict[str, Any] = {"subject": broadcast.subject}
    if broadcast.preheader:
        meta["preheader"] = broadcast.preheader
    meta.update(broadcast.audience)
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n{broadcast.body}"
