"""What the admin asks of the replies: the Replies page, newest first a page at a time
(keyset on id, through `ix_replies_matched_id`), and the count per lesson beside the
clicks on the sequence page."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drip.content.lessons import VARIABLE
from drip.content.sequences import Library
from drip.replies.incoming import split_quoted
from drip.store.models import Reply

PAGE = 50


@dataclass(frozen=True)
class Shown:
    """One reply as the page shows it: what the reader wrote, and the quoted part apart."""

    reply: Reply
    answers: str  # the lesson's subject, or the label when it is no lesson
    written: str
    quoted: str


def replies_page(
    session: Session,
    library: Library,
    *,
    sequence: str = "",
    lesson: str = "",
    unmatched: bool = False,
    before: int | None = None,
    limit: int = PAGE,
) -> list[Shown]:
    """Matched replies (or the unmatched ones, kept apart), newest first, below `before`."""
    query = select(Reply).where(Reply.matched.is_(not unmatched))
    if sequence:
        query = query.where(Reply.sequence == sequence)
    if lesson:
        query = query.where(Reply.lesson == lesson)
    if before is not None:
        query = query.where(Reply.id < before)
    rows = session.scalars(query.order_by(Reply.id.desc()).limit(limit)).all()
    return [_shown(reply, library) for reply in rows]


def _shown(reply: Reply, library: Library) -> Shown:
    course = library.get(reply.sequence or "")
    found = course.lesson(reply.lesson or "") if course else None
    answers = _plain(found.subject) if found else (reply.lesson or "")
    written, quoted = split_quoted(reply.body)
    return Shown(reply, answers, written, quoted)


def _plain(subject: str) -> str:
    """A subject as an operator reads it: `{{ first_name|default("friend") }}` as "friend"."""
    return VARIABLE.sub(lambda m: m["default"] or m["name"], subject)


def replies_per_lesson(session: Session, sequence: str) -> dict[str, int]:
    """Lesson key -> matched replies to it."""
    rows = session.execute(
        select(Reply.lesson, func.count())
        .where(Reply.sequence == sequence, Reply.matched.is_(True))
        .group_by(Reply.lesson)
    )
    return {str(lesson): int(count) for lesson, count in rows}


def waiting(session: Session) -> int:
    """Matched replies nobody has marked done."""
    return int(
        session.scalar(select(func.count()).where(Reply.matched.is_(True), Reply.done_at.is_(None)))
        or 0
    )
