"""The one sender's hot path (drip.dispatch.hot_path), shown on broadcast copies: the
status of copy N+1's reader is read in the transaction that records copy N, and on
PostgreSQL that record commits beside N+1's envelope (drip.dispatch.sender_ledger). Each
copy still goes over DATA only once the previous outcome is committed, a reader who leaves
during the previous hand-off gets nothing, and a worker whose lease ran out changes
nothing. Both databases."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from drip.audience.leaving import unsubscribe
from drip.content.sequences import Library
from drip.core.clock import FrozenClock
from drip.dispatch.broadcast_copies import BroadcastCopies
from drip.dispatch.broadcasts import schedule
from drip.dispatch.chaining import chain
from drip.dispatch.hot_path import EVENTS, HotPath
from drip.dispatch.offers import Offers
from drip.dispatch.producers import Item, Lease, why_not
from drip.dispatch.requested import REQUESTS
from drip.services import Services, build_services
from drip.store.models import (
    BroadcastRecipient,
    Enrollment,
    EventKind,
    RecipientStatus,
    Subscriber,
)
from tests.conftest import make_settings
from tests.dispatch.test_chaining import library_with
from tests.dispatch.test_one_way import NINE_IN_NEW_YORK, add_finished_readers, news
from tests.smtp import SmtpServer

COPIES = cast(Table, BroadcastRecipient.__table__)


@pytest.fixture
def svc(tmp_path: Path, backend_url: str, smtp_server: SmtpServer) -> Services:
    settings = make_settings(tmp_path, backend_url, smtp_url=smtp_server.url)
    return build_services(settings, FrozenClock(NINE_IN_NEW_YORK))


def three_copies_due(svc: Services) -> list[str]:
    """Three readers' copies due now; their addresses in the order the copies go out (by
    copy id: PostgreSQL's INSERT ... SELECT numbers them in no set order of readers)."""
    now = svc.clock()
    add_finished_readers(svc, 3, now)
    with svc.sessions() as session:
        schedule(session, svc.content.library(), news(), now, now)
        return list(
            session.scalars(
                select(Subscriber.email)
                .join(COPIES, COPIES.c.subscriber_id == Subscriber.id)
                .order_by(COPIES.c.id)
            )
        )


def copies_sent(svc: Services) -> int:
    with svc.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(COPIES.c.status == RecipientStatus.SENT)
            ).scalar_one()
        )


def leave(svc: Services, address: str) -> None:
    with svc.sessions() as session:
        enrollment = session.scalars(
            select(Enrollment.id).join(Subscriber).where(Subscriber.email == address)
        ).one()
        unsubscribe(session, enrollment, svc.clock())
        session.commit()


def test_each_copy_goes_over_data_only_once_the_previous_outcome_is_committed(
    svc: Services, smtp_server: SmtpServer
) -> None:
    three_copies_due(svc)
    committed_at_data: list[int] = []
    smtp_server.handler.data_answer = lambda number: committed_at_data.append(copies_sent(svc))
    report = svc.dispatcher().run_pass(svc.clock())
    assert [o.status for o in report.outcomes] == ["sent", "sent", "sent"]
    assert committed_at_data == [0, 1, 2]
    assert copies_sent(svc) == 3
    svc.engine.dispose()


def test_a_reader_who_leaves_during_the_previous_copys_hand_off_gets_none(
    svc: Services, smtp_server: SmtpServer
) -> None:
    readers = three_copies_due(svc)

    def during_data(number: int) -> None:
        if number == 1:  # the first reader's copy, before the relay answers
            leave(svc, readers[1])

    smtp_server.handler.data_answer = during_data
    report = svc.dispatcher().run_pass(svc.clock())
    assert [(o.email, o.status) for o in report.outcomes] == [
        (readers[0], "sent"),
        (readers[1], "skipped"),
        (readers[2], "sent"),
    ]
    assert [m.recipients for m in smtp_server.messages] == [[readers[0]], [readers[2]]]
    with svc.engine.connect() as conn:
        statuses: dict[str, str] = dict(
            conn.execute(
                select(Subscriber.email, COPIES.c.status).join(
                    Subscriber, Subscriber.id == COPIES.c.subscriber_id
                )
            ).all()
        )
    assert statuses == {
        readers[0]: RecipientStatus.SENT,
        readers[1]: RecipientStatus.SKIPPED,
        readers[2]: RecipientStatus.SENT,
    }
    svc.engine.dispose()


def claimed(
    svc: Services, session: Session, library: Library
) -> tuple[BroadcastCopies, list[Item]]:
    copies = BroadcastCopies(library, svc.renderer, svc.links)
    lease = Lease("worker-a", svc.clock())
    items = copies.due(session, svc.clock(), 10, lease)
    for item in items:
        copies.render(session, item)
    return copies, items


def test_the_read_on_the_drivers_cursor_finds_what_sqlalchemy_finds(svc: Services) -> None:
    readers = three_copies_due(svc)
    leave(svc, readers[1])
    with svc.sessions() as session, svc.engine.connect() as conn:
        copies, items = claimed(svc, session, svc.content.library())
        hot = HotPath(conn, copies, None, "worker-a")
        found = [hot.read(item) for item in items]
        assert found == [why_not(session, copies, item) for item in items]
        assert found == ["", "the reader left", ""]
    svc.engine.dispose()


def test_a_worker_whose_lease_ran_out_records_nothing_and_still_reads_the_next(
    svc: Services,
) -> None:
    three_copies_due(svc)
    now: datetime = svc.clock()
    with svc.sessions() as session, svc.engine.connect() as conn:
        copies, items = claimed(svc, session, svc.content.library())
        first, second = items[0], items[1]
        session.execute(
            update(COPIES).where(COPIES.c.id == first.row_id).values(lease_owner="worker-b")
        )
        session.commit()
        hot = HotPath(conn, copies, None, "worker-a")
        assert hot.record_sent(first, 1, now, second) == (False, "")
        assert hot.record_sent(second, 1, now, None) == (True, None)
    with svc.engine.connect() as conn:
        rows = dict(conn.execute(select(COPIES.c.id, COPIES.c.status)).all())
    assert rows[first.row_id] == RecipientStatus.SENDING
    assert rows[second.row_id] == RecipientStatus.SENT
    svc.engine.dispose()


def test_an_offer_is_recorded_with_its_event_in_one_commit_only_while_the_lease_holds(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer
) -> None:
    courses = library_with(tmp_path, "on_complete: {offer: next-course}\n")
    settings = make_settings(tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=courses)
    svc = build_services(settings, FrozenClock(NINE_IN_NEW_YORK))
    now = svc.clock()
    add_finished_readers(svc, 2, now)
    library = svc.content.library()
    with svc.sessions() as session, svc.engine.connect() as conn:
        chain(session, library, now)
        offers = Offers(library, svc.renderer)
        first, second = offers.due(session, now, 10, Lease("worker-a", now + timedelta(hours=1)))
        session.execute(
            update(REQUESTS).where(REQUESTS.c.id == first.row_id).values(lease_owner="worker-b")
        )
        session.commit()
        hot = HotPath(conn, offers, offers.sent_event, "worker-a")
        assert hot.read(second) == ""
        assert hot.record_sent(first, 1, now, second) == (False, "")
        assert hot.record_sent(second, 1, now, None) == (True, None)
    with svc.engine.connect() as conn:
        assert list(conn.scalars(select(REQUESTS.c.id))) == [first.row_id]
        offered = conn.execute(
            select(EVENTS.c.subscriber_id).where(EVENTS.c.kind == EventKind.OFFERED)
        ).all()
    assert offered == [(second.subscriber_id,)]
    svc.engine.dispose()
