"""The sign-up queue: what the worker does with the sign-ups the web accepted."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from drip.audience import intake
from drip.audience.subscriptions import Consent
from drip.cli import cli
from drip.core.clock import FrozenClock
from drip.ops.stats import overview
from drip.services import Services, build_services
from drip.store.models import ConsentRecord, Enrollment, Event, SignUpRequest, Subscriber
from tests.conftest import TESTS, count, make_settings, take_in
from tests.smtp import SmtpServer

CONSENT = Consent(
    source="sign-up page /subscribe/tiny",
    text="Yes, send me the course.",
    ip="198.51.100.4",
    user_agent="test browser",
)


@pytest.fixture
def svc(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Services]:
    """On SQLite and PostgreSQL, with a copy of the test sequences that a test may break."""
    sequences = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", sequences)
    services = build_services(
        make_settings(tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=sequences),
        clock,
    )
    yield services
    services.engine.dispose()


def accept(svc: Services, email: str, sequence: str = "tiny", first_name: str = "") -> None:
    with svc.sessions() as session:
        intake.accept(session, sequence, email, svc.clock(), CONSENT, first_name=first_name)
        session.commit()


def test_two_queued_sign_ups_of_one_address_make_one_reader_with_two_consent_records(
    svc: Services, clock: FrozenClock
) -> None:
    accept(svc, "ada@example.org", first_name="Ada")
    clock.advance(minutes=1)
    accept(svc, "ada@example.org")

    report = take_in(svc)

    assert report.taken == 2 and not report.held
    assert [count(svc, m) for m in (Subscriber, Enrollment, ConsentRecord, SignUpRequest)] == [
        1,
        1,
        2,
        0,
    ]
    with svc.sessions() as session:
        assert session.scalars(select(Subscriber.first_name)).one() == "Ada"
        assert session.scalars(select(Event.kind)).all() == ["signed_up"]


def test_a_sign_up_for_a_broken_sequence_waits_with_the_reason_until_it_is_fixed(
    svc: Services, clock: FrozenClock
) -> None:
    accept(svc, "ada@example.org")
    definition = svc.settings.sequences_dir / "tiny" / "sequence.yaml"
    good = definition.read_text()
    definition.write_text(good.replace("timezone: America/New_York", "timezone: [oops"))

    held = take_in(svc)

    assert held.taken == 0
    why = "sequence 'tiny' has problems: the admin's Sequences page says what to fix"
    assert list(held.held.values()) == [why]
    with svc.sessions() as session:
        assert session.scalars(select(SignUpRequest.problem)).one() == why
        assert overview(session, clock(), 60).signups_held == [(why, 1)]
    assert count(svc, Subscriber) == 0

    definition.write_text(good)
    assert take_in(svc).taken == 1
    assert (count(svc, Subscriber), count(svc, SignUpRequest)) == (1, 0)


def test_a_sign_up_for_a_removed_sequence_is_kept_and_the_pass_says_why(
    svc: Services, clock: FrozenClock
) -> None:
    accept(svc, "ada@example.org", sequence="retired-course")
    accept(svc, "bob@example.org")

    report = svc.dispatcher().run_pass(clock())

    assert report.intake.taken == 1
    assert (
        "1 sign-up taken in, 1 waiting (sequence 'retired-course' is not in the sequences "
        "folder any more)" in report.summary()
    )
    with svc.sessions() as session:
        left = session.scalars(select(SignUpRequest)).one()
        assert (left.email, left.source, left.consent_text) == (
            "ada@example.org",
            CONSENT.source,
            CONSENT.text,
        )
        assert overview(session, clock(), 60).signups_waiting == 1


def test_the_pass_takes_sign_ups_in_and_sends_their_confirmations_at_once(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    accept(svc, "ada@example.org")
    accept(svc, "bob@example.org")

    dry = svc.dispatcher().run_pass(clock(), dry_run=True)
    assert "2 sign-ups waiting to be taken in" in dry.summary()
    assert count(svc, SignUpRequest) == 2  # a dry run changes nothing

    report = svc.dispatcher().run_pass(clock())

    assert report.summary() == (
        f"dispatch as of {clock().isoformat()}: 2 sign-ups taken in, 2 sent"
    )
    assert sorted(r for m in smtp_server.messages for r in m.recipients) == [
        "ada@example.org",
        "bob@example.org",
    ]
    assert {m.subject for m in smtp_server.messages} == {"Please confirm: Tiny course"}


def test_drip_status_counts_the_sign_ups_waiting(svc: Services, tmp_path: Path) -> None:
    accept(svc, "ada@example.org")
    env = {
        "DRIP_DATABASE_URL": svc.settings.database_url,
        "DRIP_SEQUENCES_DIR": str(svc.settings.sequences_dir),
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_SECRET_KEY": "test-secret",
    }

    result = CliRunner().invoke(cli, ["status"], env=env)

    assert result.exit_code == 0, result.output
    assert "1 sign-ups waiting to be taken in by the next dispatch pass" in result.output


@pytest.mark.slow
def test_several_workers_take_each_sign_up_in_exactly_once(
    tmp_path: Path, postgres_url: str, clock: FrozenClock
) -> None:
    """Four PostgreSQL workers at once over 1,200 sign-ups, some of one address twice: every
    sign-up becomes exactly one consent record, every address one reader."""
    services = [build_services(make_settings(tmp_path, postgres_url), clock) for _ in range(4)]
    addresses = [f"r{n}@example.org" for n in range(1000)] + [
        f"r{n}@example.org" for n in range(0, 1000, 5)
    ]
    with services[0].sessions() as session:
        for address in addresses:
            intake.accept(session, "tiny", address, clock(), CONSENT)
        session.commit()
    barrier = threading.Barrier(len(services))
    taken = [0] * len(services)

    def work(n: int) -> None:
        barrier.wait()
        for _ in range(20):  # a batch undone by a same-address clash is taken next pass
            with services[n].sessions() as session:
                taken[n] += intake.take_in(session, services[n].content.library(), batch=50).taken
                if not intake.waiting(session):
                    return

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(services))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    svc = services[0]
    assert sum(taken) == len(addresses)
    assert sum(1 for t in taken if t) > 1, "the workers did not share the queue"
    assert count(svc, SignUpRequest) == 0
    assert count(svc, ConsentRecord) == len(addresses)
    assert count(svc, Subscriber) == count(svc, Enrollment) == 1000
    for each in services:
        each.engine.dispose()
