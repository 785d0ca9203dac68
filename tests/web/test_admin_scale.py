"""The admin at any size: tallies that agree with a direct count whatever writes the rows,
lists a keyset page at a time with a total, and a search by the start of an address."""
# ruff: noqa: F811  (the services fixture imported from test_stats is a parameter here)

from __future__ import annotations

import os
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from drip.audience.controls import restart, retry_delivery
from drip.audience.erasure import erase_subscriber
from drip.audience.leaving import unsubscribe
from drip.core.clock import FrozenClock
from drip.mail import outbox
from drip.services import Services
from drip.store import queries, rollups
from drip.store.filters import Filters
from drip.store.models import (
    DailyTally,
    Delivery,
    DeliveryTally,
    Enrollment,
    EnrollmentStatus,
    EnrollmentTally,
    Subscriber,
)
from drip.store.queries import Cursor
from tests.bulk import add_due_readers
from tests.ops.test_stats import services, sign_up  # noqa: F401  (a fixture: on both backends)
from tests.smtp import SmtpServer


def tallies(session: Session) -> tuple[dict[Any, Any], ...]:
    """What the tally tables hold, zero rows left out."""
    enrollments = {
        (t.sequence, t.status): (t.enrollments, t.confirmed)
        for t in session.scalars(select(EnrollmentTally))
        if t.enrollments
    }
    deliveries = {
        (t.sequence, t.lesson, t.status): t.deliveries
        for t in session.scalars(select(DeliveryTally))
        if t.deliveries
    }
    days = {
        t.day: (t.sent, t.failed) for t in session.scalars(select(DailyTally)) if t.sent or t.failed
    }
    return enrollments, deliveries, days


def direct_counts(session: Session) -> tuple[dict[Any, Any], ...]:
    """The same numbers counted from the rows themselves."""
    confirmed = func.sum(case((Enrollment.confirmed_at.is_not(None), 1), else_=0))
    enrollments = {
        (slug, status): (int(n), int(c))
        for slug, status, n, c in session.execute(
            select(Enrollment.sequence, Enrollment.status, func.count(), confirmed).group_by(
                Enrollment.sequence, Enrollment.status
            )
        )
    }
    deliveries = {
        (slug, lesson, status): int(n)
        for slug, lesson, status, n in session.execute(
            select(Enrollment.sequence, Delivery.lesson, Delivery.status, func.count())
            .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
            .group_by(Enrollment.sequence, Delivery.lesson, Delivery.status)
        )
    }
    days: dict[date, list[int]] = {}
    for row in session.scalars(select(Delivery)):
        if row.status == "sent" and row.sent_at:
            days.setdefault(row.sent_at.date(), [0, 0])[0] += 1
        elif row.status == "failed":
            days.setdefault(row.updated_at.date(), [0, 0])[1] += 1
    return enrollments, deliveries, {day: tuple(n) for day, n in days.items()}


def test_tallies_agree_with_a_direct_count_after_sends_failures_and_unsubscribes(
    services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    for name in ("ada", "bob", "cat", "dan", "eve", "fay"):
        sign_up(services, f"{name}@example.org")
    sign_up(services, "pending@example.org", confirmed=False)
    smtp_server.answer("bob@example.org", "451 4.3.0 try again later")
    smtp_server.answer("cat@example.org", "550 5.1.1 no such user")
    services.dispatcher().run_pass(clock())  # sends, a retry, a hard bounce, a confirmation
    library = services.content.library()
    with services.sessions() as session:
        assert tallies(session) == direct_counts(session)
        _, deliveries, days = tallies(session)
        assert deliveries[("tiny", "welcome", "sent")] == 4
        assert days == {clock().date(): (4, 1)}
        by_address = {s.email: s for s in session.scalars(select(Subscriber))}
        unsubscribe(session, by_address["dan@example.org"].enrollments[0].id, clock())
        restart(session, library, by_address["eve@example.org"].enrollments[0], clock())
        erase_subscriber(session, by_address["fay@example.org"])  # cascades to its deliveries
        failed = session.scalar(select(Delivery).where(Delivery.status == "failed"))
        assert failed is not None
        retry_delivery(session, library, failed, clock())
        session.commit()
    clock.advance(days=2, hours=1)  # lesson two is due, bob's retry long since
    smtp_server.answer("bob@example.org", "250 ok")
    services.dispatcher().run_pass(clock())
    with services.sessions() as session:
        counted = direct_counts(session)
        assert tallies(session) == counted
        assert ("tiny", EnrollmentStatus.UNSUBSCRIBED) in counted[0]
        rollups.rebuild(session.connection())  # what a bulk load does: recount from the rows
        assert tallies(session) == counted
        assert queries.counts_by_sequence_and_status(session)["tiny"] == Counter(
            {status: n for (_, status), (n, _) in counted[0].items()}
        )


@pytest.fixture
def many(services: Services, clock: FrozenClock) -> list[int]:
    """25 readers of `tiny` (ids in sign-up order), every fifth paused, the rest active;
    five more in `other`."""
    add_due_readers(services.engine, 25, clock())
    with services.engine.begin() as conn:
        ids = list(conn.scalars(select(Enrollment.id).order_by(Enrollment.id)))
        conn.execute(
            update(Enrollment)
            .where(Enrollment.id.in_(ids[::5]))
            .values(status=EnrollmentStatus.PAUSED)
        )
        conn.execute(update(Enrollment).where(Enrollment.id.in_(ids[20:])).values(sequence="other"))
    return ids


def page_ids(page: queries.Page[Any]) -> list[int]:
    return [row[0].id for row in page.rows]


def test_readers_list_pages_from_first_to_last_and_back_with_a_total(
    services: Services, many: list[int]
) -> None:
    newest_first = many[::-1]
    with services.sessions() as session:
        first = queries.readers_page(session, Cursor(), Filters(), size=10)
        assert page_ids(first) == newest_first[:10] and first.total == 25
        assert first.first and first.newer is None and first.older == newest_first[9]
        second = queries.readers_page(session, Cursor(after=first.older), Filters(), size=10)
        assert page_ids(second) == newest_first[10:20]
        last = queries.readers_page(session, Cursor(last=True), Filters(), size=10)
        assert page_ids(last) == newest_first[15:]  # a full page: the ten oldest
        assert last.older is None and last.newer == newest_first[15]
        back = queries.readers_page(session, Cursor(before=last.newer), Filters(), size=10)
        assert page_ids(back) == newest_first[5:15]
        end = queries.readers_page(session, Cursor(after=second.older), Filters(), size=10)
        assert page_ids(end) == newest_first[20:] and end.older is None


def test_readers_list_filters_by_sequence_and_status_with_their_totals(
    services: Services, many: list[int]
) -> None:
    paused_tiny = many[:20:5][::-1]
    with services.sessions() as session:
        paused = queries.readers_page(
            session, Cursor(), Filters(status=EnrollmentStatus.PAUSED, sequence="tiny"), size=3
        )
        assert page_ids(paused) == paused_tiny[:3] and paused.total == 4
        rest = queries.readers_page(
            session,
            Cursor(after=paused.older),
            Filters(status=EnrollmentStatus.PAUSED, sequence="tiny"),
            size=3,
        )
        assert page_ids(rest) == paused_tiny[3:] and rest.older is None
        other = queries.readers_page(session, Cursor(), Filters(sequence="other"))
        assert page_ids(other) == many[20:][::-1] and other.total == 5
        every_paused = queries.readers_page(session, Cursor(), Filters(status="paused"))
        assert every_paused.total == 5 and len(every_paused.rows) == 5


def test_search_finds_addresses_by_their_start_only_and_takes_wildcards_literally(
    services: Services,
) -> None:
    for address in ("a_b@example.org", "axb@example.org", "ab%c@example.org", "zed@ab-c.org"):
        sign_up(services, address)
    with services.sessions() as session:

        def found(prefix: str) -> list[str]:
            page = queries.readers_page(session, Cursor(), Filters(address=prefix))
            assert page.total == len(page.rows)
            return sorted(row[1].email for row in page.rows)

        assert found("a_") == ["a_b@example.org"]
        assert found("A") == ["a_b@example.org", "ab%c@example.org", "axb@example.org"]
        assert found("ab%") == ["ab%c@example.org"]
        assert found("ab-c.org") == []


def test_delivery_log_pages_and_filters_by_status_sequence_and_address(
    services: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    for name in ("ada", "bob", "cat"):
        sign_up(services, f"{name}@example.org")
    smtp_server.answer("cat@example.org", "550 5.1.1 no such user")
    services.dispatcher().run_pass(clock())
    with services.sessions() as session:
        every = queries.deliveries_page(session, Cursor(), Filters(), size=2)
        assert every.total == 3 and len(every.rows) == 2 and every.older is not None
        failed = queries.deliveries_page(session, Cursor(), Filters(status="failed"))
        assert [row[2].email for row in failed.rows] == ["cat@example.org"]
        assert failed.total == 1
        assert queries.deliveries_page(session, Cursor(), Filters(sequence="other")).total == 0
        bob = queries.deliveries_page(session, Cursor(), Filters(address="bo"))
        assert [row[2].email for row in bob.rows] == ["bob@example.org"] and bob.total == 1


def test_the_outbox_lists_a_page_at_a_time_newest_first(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    folder.mkdir()
    for n in range(7):
        path = folder / f"m{n}.eml"
        path.write_bytes(f"To: r{n}@example.org\nSubject: {n}\n\nbody\n".encode())
        stamp = 1_700_000_000 + n
        os.utime(path, (stamp, stamp))
    first = outbox.listing(folder, size=3)
    assert [name for name, _ in first.messages] == ["m6.eml", "m5.eml", "m4.eml"]
    assert first.total == 7 and first.newer is None and first.older == "m4.eml"
    second = outbox.listing(folder, after=first.older, size=3)
    assert [m["Subject"] for _, m in second.messages] == ["3", "2", "1"]
    last = outbox.listing(folder, last=True, size=3)
    assert [name for name, _ in last.messages] == ["m2.eml", "m1.eml", "m0.eml"]
    assert last.older is None and last.newer == "m2.eml"
    back = outbox.listing(folder, before=last.newer, size=3)
    assert [name for name, _ in back.messages] == ["m5.eml", "m4.eml", "m3.eml"]
