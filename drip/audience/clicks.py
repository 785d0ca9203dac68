"""Link tracking, privacy first: a click on a tracked link (`track_links: true`) is
recorded and sent on to where the link leads, with UTM parameters where the sequence asks
(`utm: true`). Mail scanners that open every link within seconds of delivery are recorded
apart (`counted` False), so the numbers are readers'. Opens (`track_opens: true`) are
recorded the same way, though they lie: Apple Mail opens every message it receives.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drip.audience.engagement import mark_engaged
from drip.content.sequences import Library
from drip.core.clock import as_utc
from drip.mail.labels import broadcast_of
from drip.store.models import (
    BroadcastRecipient,
    Delivery,
    Enrollment,
    Event,
    EventKind,
    LinkClick,
)

SCANNER_WINDOW = timedelta(seconds=10)  # a "click" sooner than this after the send is a scanner
OPEN = -1


def with_utm(url: str, sequence: str, lesson: str) -> str:
    """The URL with utm_source, utm_medium, utm_campaign and utm_content, keeping any the
    author already set."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for key, value in (
        ("utm_source", "drip"),
        ("utm_medium", "email"),
        ("utm_campaign", sequence),
        ("utm_content", lesson),
    ):
        query.setdefault(key, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def from_a_browser(user_agent: str) -> bool:
    """The one scanner check on a User-Agent: every browser's starts "Mozilla/", a mail
    scanner's or a link checker's mostly does not. A fetch that fails it changes nothing a
    reader's click would (no tag, no counted click)."""
    return user_agent.startswith("Mozilla/")


def looks_like_a_person(
    user_agent: str, accept: str, sent_at: datetime | None, now: datetime
) -> bool:
    """A browser asks for HTML with a browser's User-Agent, and a person reads the email
    before clicking; a scanner fetches every link as soon as the message arrives."""
    if not from_a_browser(user_agent) or "text/html" not in accept:
        return False
    return sent_at is None or now - as_utc(sent_at) >= SCANNER_WINDOW


def record_click(
    session: Session,
    library: Library,
    enrollment_id: int,
    lesson: str,
    index: int,
    target: str,
    now: datetime,
    *,
    user_agent: str,
    accept: str,
) -> str | None:
    """Record the click and return where to send the reader, or None when the link names
    no delivery (a reader since erased: the link still leads where it did, unrecorded)."""
    enrollment = session.get(Enrollment, enrollment_id) if 0 < enrollment_id < 2**31 else None
    sequence = library.get(enrollment.sequence) if enrollment else None
    destination = (
        with_utm(target, enrollment.sequence, lesson)
        if enrollment and sequence and sequence.utm and index != OPEN
        else target
    )
    if enrollment is None:
        return destination
    broadcast_id = broadcast_of(lesson)
    sent_at = session.scalar(
        select(BroadcastRecipient.sent_at).where(
            BroadcastRecipient.broadcast_id == broadcast_id,
            BroadcastRecipient.enrollment_id == enrollment_id,
        )
        if broadcast_id is not None  # a broadcast's link: when this reader's copy went
        else select(Delivery.sent_at).where(
            Delivery.enrollment_id == enrollment_id, Delivery.lesson == lesson
        )
    )
    counted = looks_like_a_person(user_agent, accept, sent_at, now)
    session.add(
        LinkClick(
            enrollment_id=enrollment_id,
            sequence=enrollment.sequence,
            lesson=lesson,
            link_index=index,
            url=target[:2000],
            at=now,
            counted=counted,
            user_agent=user_agent[:500] or None,
        )
    )
    if counted and index != OPEN:
        session.add(
            Event(
                subscriber_id=enrollment.subscriber_id,
                enrollment_id=enrollment_id,
                kind=EventKind.CLICKED,
                at=now,
                detail=f"{lesson}: {target}"[:1000],
            )
        )
        # a person's click: engaged at once (a gone reader's courses go on)
        mark_engaged(session, enrollment.subscriber, library, now, now)
    return destination


def clicks_by_link(
    session: Session,
    sequence: str,
) -> dict[tuple[str, int, str], tuple[int, int]]:
    """(lesson, link index, URL) -> (clicks by readers, fetches by scanners)."""
    rows = session.execute(
        select(
            LinkClick.lesson, LinkClick.link_index, LinkClick.url, LinkClick.counted, func.count()
        )
        .where(LinkClick.sequence == sequence)
        .group_by(LinkClick.lesson, LinkClick.link_index, LinkClick.url, LinkClick.counted)
    )
    tally: dict[tuple[str, int, str], Counter[bool]] = {}
    for lesson, index, url, counted, number in rows:
        tally.setdefault((lesson, index, url), Counter())[bool(counted)] += number
    return {key: (found[True], found[False]) for key, found in sorted(tally.items())}


def clicks_per_lesson(by_link: dict[tuple[str, int, str], tuple[int, int]]) -> dict[str, int]:
    """Readers' clicks per lesson, from `clicks_by_link`."""
    clicks: dict[str, int] = {}
    for (lesson, _index, _url), (readers, _scanners) in by_link.items():
        clicks[lesson] = clicks.get(lesson, 0) + readers
    return clicks


def readers_who_clicked(session: Session, sequence: str) -> int:
    """Readers of `sequence` who clicked at least one link (the funnel's step): scanners'
    fetches and opens left out."""
    return int(
        session.scalar(
            select(func.count(func.distinct(LinkClick.enrollment_id))).where(
                LinkClick.sequence == sequence,
                LinkClick.counted.is_(True),
                LinkClick.link_index != OPEN,
            )
        )
        or 0
    )
