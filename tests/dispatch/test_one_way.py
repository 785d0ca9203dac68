"""One way out: every kind of message (confirmation, lesson, fresh link, offer, broadcast
copy) takes its slot of the one shared pace, inside the reader's send window (confirmations
and fresh links excepted), and the dry run lists every kind the real pass then sends."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, insert, select

from drip.core.clock import FrozenClock
from drip.dispatch import Dispatcher, OutcomeStatus, PassReport
from drip.dispatch.broadcasts import BroadcastFile, schedule
from drip.dispatch.outcome import Kind
from drip.jobs.worker import pass_counts
from drip.mail.pace import Pace
from drip.mail.transports import SmtpTransport
from drip.services import Services, build_services
from drip.store.models import (
    BroadcastRecipient,
    Enrollment,
    EnrollmentStatus,
    LinkRequest,
    RecipientStatus,
    Subscriber,
)
from tests.bulk import add_due_readers
from tests.conftest import TESTS_DAILY_CAP, enroll, make_settings
from tests.dispatch.test_chaining import library_with
from tests.dispatch.test_crash_recovery import DRIP
from tests.dispatch.test_relay_pace import busiest_second, never_ahead_of_the_pace
from tests.mail.test_pace import FakeTime
from tests.smtp import AfterHandOff, SmtpServer

RATE = 20
NINE_IN_NEW_YORK = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the tiny course's window opens
SUBSCRIBERS = cast(Table, Subscriber.__table__)
ENROLLMENTS = cast(Table, Enrollment.__table__)


def news(to: tuple[str, ...] = ("tiny",)) -> BroadcastFile:
    return BroadcastFile(
        "news", "News", "", "A new post. [Leave]({{ unsubscribe_url }})", to, "both", ()
    )


def add_finished_readers(svc: Services, count: int, now: datetime) -> list[str]:
    """`count` readers who finished the tiny course an hour ago: each is due an offer."""
    people = [
        {
            "email": f"done{n:03d}@example.org",
            "first_name": "",
            "timezone": "America/New_York",
            "attributes": {},
            "created_at": now - timedelta(days=9),
        }
        for n in range(count)
    ]
    with svc.engine.begin() as conn:
        conn.execute(insert(SUBSCRIBERS), people)
        ids = {
            row.email: row.id for row in conn.execute(select(SUBSCRIBERS.c.email, SUBSCRIBERS.c.id))
        }
        conn.execute(
            insert(ENROLLMENTS),
            [
                {
                    "subscriber_id": ids[p["email"]],
                    "sequence": "tiny",
                    "status": EnrollmentStatus.COMPLETED,
                    "attempts": 0,
                    "created_at": now - timedelta(days=9),
                    "confirmed_at": now - timedelta(days=9),
                    "completed_at": now - timedelta(hours=1),
                }
                for p in people
            ],
        )
    return [str(p["email"]) for p in people]


def every_kind_due(svc: Services, now: datetime) -> Counter[Kind]:
    """Lessons, confirmations, offers, fresh links and a broadcast, all due at `now`; how
    many of each the pass owes."""
    add_due_readers(svc.engine, 30, now)
    for n in range(15):
        enroll(svc, f"new{n:03d}@example.org", confirmed=False)
    add_finished_readers(svc, 15, now)
    with svc.sessions() as session:
        wanting = session.scalars(select(Enrollment.id).where(Enrollment.status == "active"))
        for enrollment_id in list(wanting)[:10]:
            session.add(
                LinkRequest(enrollment_id=enrollment_id, kind="magnet-link", requested_at=now)
            )
        session.commit()
        schedule(session, svc.content.library(), news(), now, now)  # 30 active + 15 finished
    return Counter(
        {
            Kind.LESSON: 30,
            Kind.CONFIRMATION: 15,
            Kind.OFFER: 15,
            Kind.FRESH_LINK: 10,
            Kind.BROADCAST: 45,
        }
    )


@pytest.fixture
def svc(tmp_path: Path, backend_url: str, smtp_server: SmtpServer) -> Services:
    clock = FrozenClock(NINE_IN_NEW_YORK)
    courses = library_with(tmp_path, "on_complete: {offer: next-course}\n")
    settings = make_settings(
        tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=courses, send_rate=RATE
    )
    return build_services(settings, clock)


def test_every_kind_due_at_once_keeps_to_the_one_send_rate_and_arrives_once(
    svc: Services, smtp_server: SmtpServer
) -> None:
    now = svc.clock()
    owed = every_kind_due(svc, now)
    fake = FakeTime()
    handed: list[float] = []  # the pace's time of each hand-off the relay accepted
    dispatcher = Dispatcher(
        svc.engine,
        svc.settings,
        svc.content,
        svc.renderer,
        svc.links,
        lambda: AfterHandOff(SmtpTransport(smtp_server.url), lambda _: handed.append(fake.now)),
        clock=svc.clock,
        pace=Pace(svc.engine, RATE, clock=fake.clock, sleep=fake.sleep),
    )

    report = dispatcher.run_pass(now)

    sent = Counter(o.kind for o in report.outcomes if o.status == OutcomeStatus.SENT)
    assert sent == owed
    assert len(smtp_server.messages) == sum(owed.values())
    arrivals = Counter((r, m.subject) for m in smtp_server.messages for r in m.recipients)
    assert set(arrivals.values()) == {1}  # each message once
    assert len(handed) == sum(owed.values())
    assert busiest_second(handed) <= RATE
    lessons = [o.kind for o in report.outcomes if o.kind in (Kind.LESSON, Kind.BROADCAST)]
    assert lessons == sorted(lessons, key=lambda kind: kind == Kind.BROADCAST)  # lessons first
    svc.engine.dispose()


def test_an_offer_and_a_late_broadcast_copy_wait_for_the_readers_send_window(
    svc: Services, smtp_server: SmtpServer
) -> None:
    clock = cast(FrozenClock, svc.clock)
    clock.set(NINE_IN_NEW_YORK - timedelta(hours=1))  # 08:00 in New York: before the window
    add_finished_readers(svc, 1, clock())
    with svc.sessions() as session:
        schedule(session, svc.content.library(), news(), clock(), clock())
    late = NINE_IN_NEW_YORK + timedelta(hours=2, minutes=30)  # 11:30: the window has closed

    early = svc.dispatcher().run_pass(clock())
    clock.set(late)
    after_it = svc.dispatcher().run_pass(clock())

    assert early.count(OutcomeStatus.SENT) == 0 and after_it.count(OutcomeStatus.SENT) == 0
    assert smtp_server.messages == []
    clock.set(NINE_IN_NEW_YORK + timedelta(days=1))  # 09:00 the next morning
    report = svc.dispatcher().run_pass(clock())
    assert Counter(o.kind for o in report.outcomes if o.status == OutcomeStatus.SENT) == {
        Kind.OFFER: 1,
        Kind.BROADCAST: 1,
    }
    svc.engine.dispose()


def test_the_dry_run_lists_every_kind_the_pass_then_sends_and_the_log_line_counts_them(
    svc: Services, smtp_server: SmtpServer
) -> None:
    now = svc.clock()
    owed = every_kind_due(svc, now)

    dry = svc.dispatcher().run_pass(now, dry_run=True)
    real = svc.dispatcher().run_pass(now)

    def listed(report: PassReport, status: OutcomeStatus) -> Counter[tuple[str, str, str]]:
        return Counter((o.email, o.kind, o.lesson) for o in report.outcomes if o.status == status)

    assert listed(dry, OutcomeStatus.WOULD_SEND) == listed(real, OutcomeStatus.SENT)
    assert Counter(o.kind for o in dry.outcomes if o.status == OutcomeStatus.WOULD_SEND) == owed
    at_the_sink = Counter(r for m in smtp_server.messages for r in m.recipients)
    assert at_the_sink == Counter(o.email for o in dry.outcomes if o.status == "would-send")
    assert "nothing due" not in dry.summary()
    counts = pass_counts(real)
    assert counts["sent"] == sum(owed.values())
    assert {kind: counts[f"sent_{kind}".replace("-", "_")] for kind in owed} == owed
    svc.engine.dispose()


def test_a_dry_run_with_only_a_broadcast_due_names_its_copies(
    svc: Services, smtp_server: SmtpServer
) -> None:
    now = svc.clock()
    readers = add_due_readers(svc.engine, 3, now - timedelta(days=1))
    with svc.engine.begin() as conn:  # their lessons are not due: only the broadcast is
        conn.execute(ENROLLMENTS.update().values(due_at=now + timedelta(days=1)))
    with svc.sessions() as session:
        schedule(session, svc.content.library(), news(), now, now)

    dry = svc.dispatcher().run_pass(now, dry_run=True)
    real = svc.dispatcher().run_pass(now)

    assert "nothing due" not in dry.summary()
    assert sorted(o.email for o in dry.outcomes) == sorted(readers)
    assert sorted(r for m in smtp_server.messages for r in m.recipients) == sorted(readers)
    assert {o.kind for o in real.outcomes} == {Kind.BROADCAST}
    with svc.sessions() as session:
        assert {r.status for r in session.scalars(select(BroadcastRecipient))} == {"sent"}
    svc.engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_four_workers_on_postgres_keep_every_kind_together_to_the_send_rate(
    tmp_path: Path, postgres_url: str, smtp_server: SmtpServer
) -> None:
    courses = library_with(tmp_path, "on_complete: {offer: next-course}\n")
    svc = build_services(
        make_settings(tmp_path, postgres_url, smtp_url=smtp_server.url, sequences_dir=courses),
        FrozenClock(NINE_IN_NEW_YORK),
    )
    owed = every_kind_due(svc, NINE_IN_NEW_YORK)
    svc.engine.dispose()
    env = {
        **os.environ,
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": postgres_url,
        "DRIP_SEQUENCES_DIR": str(courses),
        "DRIP_SECRET_KEY": "k",
        "DRIP_BASE_URL": "http://drip.test",
        "DRIP_SMTP_URL": smtp_server.url,
        "DRIP_SEND_RATE": str(RATE),
        "DRIP_BATCH_SIZE": "20",
        "DRIP_READER_DAILY_CAP": str(TESTS_DAILY_CAP),  # every kind to the same readers at once
        "DRIP_ALLOW_UNSAFE_SENDING": "true",
        "DRIP_POSTAL_ADDRESS": "1 Test Street",
    }
    start = time.time()  # no slot of the shared pace comes before it
    workers = [
        subprocess.Popen(
            [DRIP, "dispatch", "--now", NINE_IN_NEW_YORK.isoformat()],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for worker in workers:
        assert worker.wait(timeout=120) == 0, worker.stderr.read() if worker.stderr else ""

    arrivals = Counter((r, m.subject) for m in smtp_server.messages for r in m.recipients)
    assert set(arrivals.values()) == {1}  # each message once, whichever worker sent it
    assert len(smtp_server.messages) == sum(owed.values())
    # The slots stay inside the processes: the sink's arrivals are held to what they imply,
    # with no tolerance (a loaded host can only delay a message); the busiest second of the
    # slots themselves is measured in tests/dispatch/test_relay_pace.py.
    assert never_ahead_of_the_pace(start, RATE, [m.at for m in smtp_server.messages])


@pytest.fixture
def plain(tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer) -> Services:
    """No pace, and a reader's message given up after two transient refusals."""
    settings = make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, max_attempts=2)
    return build_services(settings, FrozenClock(NINE_IN_NEW_YORK))


def copy_of(svc: Services, email: str) -> BroadcastRecipient:
    with svc.sessions() as session:
        return session.scalars(
            select(BroadcastRecipient)
            .join(Subscriber, Subscriber.id == BroadcastRecipient.subscriber_id)
            .where(Subscriber.email == email)
        ).one()


def test_a_relay_slowing_a_broadcast_copy_down_rests_the_worker_and_charges_no_attempt(
    plain: Services, smtp_server: SmtpServer
) -> None:
    enroll(plain, "ada@example.org")
    dispatcher = plain.dispatcher()
    dispatcher.run_pass(plain.clock())  # her welcome
    with plain.sessions() as session:
        schedule(session, plain.content.library(), news(), plain.clock(), plain.clock())
    smtp_server.answer("ada@example.org", "421 4.7.0 Try again later, closing connection")

    dispatcher.run_pass(plain.clock())

    assert dispatcher.rest_until is not None and dispatcher.rest_until > plain.clock()
    assert copy_of(plain, "ada@example.org").attempts == 0
    assert [m.subject for m in smtp_server.to("ada@example.org")] == ["Welcome, friend"]
    cast(FrozenClock, plain.clock).advance(seconds=10)
    dispatcher.run_pass(plain.clock())  # still resting: the relay asked for 30 s
    assert copy_of(plain, "ada@example.org").status == RecipientStatus.RETRYING
    cast(FrozenClock, plain.clock).advance(minutes=1)
    dispatcher.run_pass(plain.clock())
    assert [m.subject for m in smtp_server.to("ada@example.org")] == ["Welcome, friend", "News"]


def test_a_broadcast_copy_is_given_up_after_drip_max_attempts_transient_refusals(
    plain: Services, smtp_server: SmtpServer
) -> None:
    enroll(plain, "bo@example.org")
    plain.dispatcher().run_pass(plain.clock())  # his welcome
    with plain.sessions() as session:
        schedule(session, plain.content.library(), news(), plain.clock(), plain.clock())
    smtp_server.answer("bo@example.org", "451 4.3.0 Busy", "451 4.3.0 Busy")

    for _ in range(5):
        plain.dispatcher().run_pass(plain.clock())
        cast(FrozenClock, plain.clock).advance(minutes=5)

    row = copy_of(plain, "bo@example.org")
    assert (row.status, row.attempts) == (RecipientStatus.FAILED, 2)
    assert [m for m in smtp_server.to("bo@example.org") if m.subject == "News"] == []
