"""One sender, one rule, for every kind of message (confirmation, lesson, fresh link, offer,
broadcast copy): a retried hand-off of the same message reuses its Message-ID, a relay's
"slow down" rests the worker and charges no attempt, and DRIP_MAX_ATTEMPTS transient
refusals end it, whatever its kind."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select

from drip.core.clock import FrozenClock
from drip.dispatch import Dispatcher, Outcome
from drip.dispatch.broadcasts import schedule
from drip.dispatch.fresh_links import FreshLinks, request_magnet_link
from drip.dispatch.outcome import Kind
from drip.dispatch.sender import Sender
from drip.mail.message_ids import read_message_ids
from drip.mail.sessions import Sessions
from drip.mail.transports import SmtpTransport
from drip.services import Services, build_services
from drip.store.models import Enrollment, LinkRequest
from tests.conftest import enroll, make_settings
from tests.dispatch.test_chaining import library_with
from tests.dispatch.test_one_way import NINE_IN_NEW_YORK, add_finished_readers, news
from tests.smtp import AfterHandOff, Received, SmtpServer

ADA = "ada@example.org"
SECRET = "secret-of-one-sender"


def confirmation(svc: Services, dispatcher: Dispatcher) -> tuple[str, str]:
    enroll(svc, ADA, confirmed=False)
    return ADA, "confirm"


def lesson(svc: Services, dispatcher: Dispatcher) -> tuple[str, str]:
    enroll(svc, ADA)
    return ADA, "welcome"


def fresh_link(svc: Services, dispatcher: Dispatcher) -> tuple[str, str]:
    enrollment_id = enroll(svc, ADA)
    dispatcher.run_pass(svc.clock())  # the welcome
    with svc.sessions() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        assert enrollment is not None and request_magnet_link(session, enrollment, svc.clock())
        session.commit()
    return ADA, "magnet-link"


def offer(svc: Services, dispatcher: Dispatcher) -> tuple[str, str]:
    (address,) = add_finished_readers(svc, 1, svc.clock())
    return address, "offer-next-course"


def broadcast_copy(svc: Services, dispatcher: Dispatcher) -> tuple[str, str]:
    enroll(svc, ADA)
    dispatcher.run_pass(svc.clock())  # the welcome
    with svc.sessions() as session:
        schedule(session, svc.content.library(), news(), svc.clock(), svc.clock())
    return ADA, "broadcast-1"


KINDS = [confirmation, lesson, fresh_link, offer, broadcast_copy]
Due = Callable[[Services, Dispatcher], tuple[str, str]]


@pytest.fixture
def svc(tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer) -> Services:
    return services(tmp_path, sqlite_url, smtp_server)


def services(tmp_path: Path, url: str, smtp_server: SmtpServer, **settings: Any) -> Services:
    """drip with a course that offers the next one, and two attempts a message."""
    return build_services(
        make_settings(
            tmp_path,
            url,
            smtp_url=smtp_server.url,
            secret_key=SECRET,
            max_attempts=2,
            sequences_dir=library_with(tmp_path, "on_complete: {offer: next-course}\n"),
            **settings,
        ),
        FrozenClock(NINE_IN_NEW_YORK),
    )


def of_kind(smtp: SmtpServer, address: str, label: str) -> list[Received]:
    return [
        m
        for m in smtp.to(address)
        if any(s.label == label for s in read_message_ids(SECRET, str(m.message["Message-ID"])))
    ]


@pytest.mark.parametrize("due", KINDS)
def test_a_message_whose_hand_off_was_not_answered_goes_again_under_the_same_message_id(
    svc: Services, smtp_server: SmtpServer, due: Due
) -> None:
    dispatcher = svc.dispatcher()
    address, label = due(svc, dispatcher)
    taken = smtp_server.handler.data_count
    # The relay takes the message, then the connection drops before its answer: drip
    # cannot know, and sends it again.
    smtp_server.handler.drop_after_data = lambda n: n == taken + 1

    dispatcher.run_pass(svc.clock())
    cast(FrozenClock, svc.clock).advance(minutes=3)
    dispatcher.run_pass(svc.clock())

    copies = of_kind(smtp_server, address, label)
    assert len(copies) == 2
    assert copies[0].message["Message-ID"] == copies[1].message["Message-ID"]
    svc.engine.dispose()


@pytest.mark.parametrize("due", KINDS)
def test_a_relay_that_says_slow_down_rests_every_kind_and_charges_no_attempt(
    svc: Services, smtp_server: SmtpServer, due: Due
) -> None:
    dispatcher = svc.dispatcher()
    address, label = due(svc, dispatcher)
    clock = cast(FrozenClock, svc.clock)
    # As many "slow down"s as DRIP_MAX_ATTEMPTS: if one were charged, the message would
    # be given up.
    smtp_server.answer(address, *["421 4.7.0 Try again later, closing connection"] * 2)

    for _ in range(2):
        dispatcher.run_pass(clock())
        assert dispatcher.rest_until is not None and dispatcher.rest_until > clock()
        clock.advance(seconds=10)
        dispatcher.run_pass(clock())  # resting: nothing is tried
        clock.advance(minutes=2)
    assert of_kind(smtp_server, address, label) == []
    dispatcher.run_pass(clock())

    assert len(of_kind(smtp_server, address, label)) == 1
    svc.engine.dispose()


@pytest.mark.parametrize("due", KINDS)
def test_every_kind_is_given_up_after_drip_max_attempts_transient_refusals(
    svc: Services, smtp_server: SmtpServer, due: Due
) -> None:
    dispatcher = svc.dispatcher()
    address, label = due(svc, dispatcher)
    clock = cast(FrozenClock, svc.clock)
    smtp_server.answer(address, "451 4.3.0 Busy", "451 4.3.0 Busy")  # then it would take it

    for _ in range(6):
        dispatcher.run_pass(clock())
        clock.advance(minutes=5)

    assert of_kind(smtp_server, address, label) == []  # no third try
    assert smtp_server.handler.rcpt_answers[address] == []  # both refusals were met
    svc.engine.dispose()


def test_a_lesson_falling_due_during_a_long_broadcast_goes_before_its_remaining_copies(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer
) -> None:
    # a long broadcast: three batches of copies (on PostgreSQL each claimed ahead)
    svc = services(tmp_path, backend_url, smtp_server, batch_size=2)
    readers = [enroll(svc, f"r{n}@example.org") for n in range(6)]
    clock = cast(FrozenClock, svc.clock)
    dispatcher = svc.dispatcher()
    dispatcher.run_pass(clock())  # the welcomes; the next lessons are days away
    with svc.sessions() as session:
        schedule(session, svc.content.library(), news(), clock(), clock())
    clock.advance(minutes=1)
    order: list[Kind] = []

    def fall_due(outcome: Outcome) -> None:
        order.append(outcome.kind)
        if len(order) == 1:  # while the first batch of copies goes out, a lesson falls due
            with svc.sessions() as session:
                enrollment = session.get(Enrollment, readers[0])
                assert enrollment is not None
                enrollment.due_at = clock()
                session.commit()

    dispatcher.run_pass(clock(), progress=fall_due)

    assert order == [Kind.BROADCAST] * 2 + [Kind.LESSON] + [Kind.BROADCAST] * 4
    svc.engine.dispose()


def test_an_offer_queued_before_its_course_stopped_offering_is_dropped_unsent(
    svc: Services, smtp_server: SmtpServer
) -> None:
    clock = cast(FrozenClock, svc.clock)
    clock.set(NINE_IN_NEW_YORK - timedelta(hours=2))  # before the window: queued, not sent
    dispatcher = svc.dispatcher()
    address, label = offer(svc, dispatcher)
    dispatcher.run_pass(clock())
    with svc.sessions() as session:
        assert [r.kind for r in session.scalars(select(LinkRequest))] == ["offer"]
    course = svc.settings.sequences_dir / "tiny" / "sequence.yaml"
    course.write_text(course.read_text().replace("on_complete: {offer: next-course}\n", ""))
    clock.set(NINE_IN_NEW_YORK)

    report = dispatcher.run_pass(clock())

    assert [(o.kind, o.status) for o in report.outcomes] == [(Kind.OFFER, "skipped")]
    assert of_kind(smtp_server, address, label) == []
    with svc.sessions() as session:
        assert session.scalars(select(LinkRequest)).all() == []
    svc.engine.dispose()


def test_the_one_senders_lease_runs_from_each_claim_not_from_the_start_of_the_pass(
    svc: Services, smtp_server: SmtpServer
) -> None:
    fresh_link(svc, svc.dispatcher())
    leased_until: list[datetime] = []

    def look(_: str) -> None:  # between the hand-off and its record: the row as leased
        with svc.sessions() as session:
            leased_until.append(session.scalars(select(LinkRequest.due_at)).one())

    one = Sender(svc.settings, svc.renderer, svc.links, "worker-1", None)
    one.pass_started = time.monotonic() - 3600  # a pass that began an hour ago
    with (
        svc.sessions() as session,
        closing(Sessions(lambda: AfterHandOff(SmtpTransport(smtp_server.url), look))) as smtp,
    ):
        run = one.run(session, FreshLinks(svc.content.library(), svc.renderer), svc.clock(), smtp)

    assert [o.status for o in run.outcomes] == ["sent"]
    lease = timedelta(seconds=svc.settings.lease_seconds)
    assert leased_until[0] - svc.clock() >= timedelta(hours=1) + lease
    svc.engine.dispose()
