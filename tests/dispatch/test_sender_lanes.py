"""DRIP_SMTP_CONNECTIONS holds for every kind of message, not the lessons alone: the one
sender's batches (a broadcast's copies, offers, confirmations) go over that many SMTP
sessions at once, each reader's items in one of them, every copy once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import select

from drip.core.clock import FrozenClock
from drip.dispatch.broadcasts import schedule
from drip.dispatch.lane import by_reader
from drip.dispatch.outcome import Kind
from drip.dispatch.producers import Item
from drip.services import build_services
from drip.store.models import BroadcastRecipient
from tests.bulk import add_due_readers
from tests.conftest import courses_beside_tiny, enroll, make_settings
from tests.dispatch.test_caps import course, local
from tests.dispatch.test_chaining import library_with
from tests.dispatch.test_one_way import NINE_IN_NEW_YORK, every_kind_due, news
from tests.smtp import SmtpServer


def test_a_broadcast_goes_over_several_smtp_connections_each_copy_once(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    clock.set(NINE_IN_NEW_YORK)  # inside the readers' window for a broadcast
    settings = make_settings(tmp_path, backend_url, smtp_url=smtp_server.url, smtp_connections=4)
    svc = build_services(settings, clock)
    addresses = add_due_readers(svc.engine, 40, clock())
    svc.dispatcher().run_pass(clock())  # the lessons due, first
    lessons = len(smtp_server.messages)
    with svc.sessions() as session:
        schedule(session, svc.content.library(), news(), clock(), clock())

    report = svc.dispatcher().run_pass(clock())

    assert [o.kind for o in report.outcomes if o.status == "sent"] == [Kind.BROADCAST] * 40
    copies = smtp_server.messages[lessons:]
    assert Counter(r for m in copies for r in m.recipients) == Counter(addresses)
    assert len({m.peer for m in copies}) == 4  # four sessions at once
    with svc.sessions() as session:
        assert Counter(session.scalars(select(BroadcastRecipient.status))) == {"sent": 40}
    svc.engine.dispose()


def test_every_kind_goes_over_several_smtp_connections_each_message_once(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer
) -> None:
    courses = library_with(tmp_path, "on_complete: {offer: next-course}\n")
    settings = make_settings(
        tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=courses, smtp_connections=3
    )
    svc = build_services(settings, FrozenClock(NINE_IN_NEW_YORK))
    owed = every_kind_due(svc, svc.clock())

    report = svc.dispatcher().run_pass(svc.clock())

    assert Counter(o.kind for o in report.outcomes if o.status == "sent") == owed
    arrivals = Counter((r, m.subject) for m in smtp_server.messages for r in m.recipients)
    assert sum(arrivals.values()) == sum(owed.values()) and set(arrivals.values()) == {1}
    for subject in (  # the one sender's kinds, and a confirmation
        "News",
        "What comes after Tiny course",
        "Your fresh link: Tiny guide",
        "Please confirm: Tiny course",
    ):
        assert len({m.peer for m in smtp_server.messages if m.subject == subject}) == 3, subject
    svc.engine.dispose()


def test_relay_faults_mid_broadcast_over_several_sessions_lose_no_copy(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    """Refusals to try later and a session dropped after its DATA, in three sessions at
    once: every reader gets the broadcast in the end, under one Message-ID, and only the
    copy whose outcome was lost with its session can arrive twice."""
    clock.set(NINE_IN_NEW_YORK)
    settings = make_settings(tmp_path, backend_url, smtp_url=smtp_server.url, smtp_connections=3)
    svc = build_services(settings, clock)
    addresses = add_due_readers(svc.engine, 45, clock())
    svc.dispatcher().run_pass(clock())  # the lessons due, first
    lessons = len(smtp_server.messages)
    with svc.sessions() as session:
        schedule(session, svc.content.library(), news(), clock(), clock())
    smtp_server.handler.data_answer = lambda n: (
        "451 4.3.0 Try again later" if lessons + 10 < n <= lessons + 16 else None
    )
    smtp_server.handler.drop_after_data = lambda n: n == lessons + 25

    first = svc.dispatcher().run_pass(clock())
    smtp_server.handler.data_answer = smtp_server.handler.drop_after_data = None
    for _ in range(12):  # a pass every hour, in the readers' window
        clock.advance(minutes=20)
        svc.dispatcher().run_pass(clock())

    assert first.count("retrying") > 0
    copies = Counter(
        (r, str(m.message["Message-ID"]))
        for m in smtp_server.messages[lessons:]
        for r in m.recipients
    )
    assert {r for r, _ in copies} == set(addresses)
    assert len(copies) == len(addresses)  # one Message-ID per reader, retries reuse it
    assert sum(n - 1 for n in copies.values()) <= 1  # the copy the dropped session carried
    with svc.sessions() as session:
        assert Counter(session.scalars(select(BroadcastRecipient.status))) == {"sent": 45}
    svc.engine.dispose()


def item(row: int, reader: int) -> Item:
    return Item(row, 1, reader, f"r{reader}@example.org", "", "tiny", "news", 0, None, None)


def test_a_readers_items_share_one_lane_in_their_order() -> None:
    items = [item(row, reader) for row, reader in enumerate([7, 3, 7, 4, 3, 9, 7])]

    shares = by_reader(items, 3, lambda i: i.subscriber_id)

    assert sorted(i.row_id for share in shares for i in share) == list(range(7))
    for share in shares:
        assert [i.row_id for i in share] == sorted(i.row_id for i in share)
    lanes = {i.subscriber_id: n for n, share in enumerate(shares) for i in share}
    assert all(lanes[i.subscriber_id] == n for n, share in enumerate(shares) for i in share)
    assert len(shares) == 3


def test_one_item_takes_one_lane() -> None:
    shares = by_reader([item(5, 2)], 8, lambda i: i.subscriber_id)
    assert [[i.row_id for i in share] for share in shares] == [[5]]


def test_a_readers_lessons_of_one_batch_go_over_one_session_in_their_order(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    courses = courses_beside_tiny(tmp_path, {"alpha": course("Alpha"), "beta": course("Beta")})
    settings = make_settings(
        tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=courses, smtp_connections=3
    )
    svc = build_services(settings, clock)
    readers = [f"reader{n}@example.org" for n in range(6)]
    for address in readers:
        for slug in ("alpha", "beta"):
            enroll(svc, address, slug)
    clock.set(local(clock(), 9, 30))

    report = svc.dispatcher().run_pass(clock())

    assert report.count("sent") == 2 * len(readers)
    for address in readers:
        got = smtp_server.to(address)
        assert [m.subject for m in got] == ["Alpha: one", "Beta: one"]
        assert len({m.peer for m in got}) == 1  # one session, one after the other
    assert len({m.peer for m in smtp_server.messages}) == 3  # the three sessions shared them
    svc.engine.dispose()
