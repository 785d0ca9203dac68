"""The pass sends each reader their variant of a lesson under test, records it on the
delivery, and leaves the reader's other lessons as they are."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from drip.content.variants import assign
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import Delivery, Enrollment, Subscriber
from tests.conftest import enroll, services_with
from tests.smtp import SmtpServer

COURSE = {
    "sequence.yaml": (
        'title: "Trial"\npromise: "Try."\nsender: "Ada <ada@example.org>"\ntimezone: UTC\n'
        'send_window:\n  start: "00:00"\n  end: "23:59"\ndouble_opt_in: false\n'
    ),
    "01-hello.md": (
        '---\nsubject: "Hello"\ndelay: 0\ngoal: next-lesson-kept\n---\nThe plain welcome.\n'
    ),
    "01-hello.b.md": 'The **story** welcome, {{ first_name|default("friend") }}.\n',
    "02-next.md": '---\nsubject: "Next"\ndelay: 1d\n---\nThe same for everyone.\n',
}


@pytest.fixture
def svc(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Services]:
    with services_with(tmp_path, backend_url, smtp_server, clock, {"trial": COURSE}) as svc:
        yield svc


def test_each_reader_gets_their_variant_and_the_delivery_records_it(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    emails = [f"r{number}@example.org" for number in range(30)]
    for email in emails:
        enroll(svc, email, "trial")
    svc.dispatcher().run_pass(clock())
    clock.advance(days=1, minutes=1)
    svc.dispatcher().run_pass(clock())
    with svc.sessions() as session:
        rows = session.execute(
            select(
                Delivery.lesson,
                Delivery.variant,
                Delivery.lesson_version,
                Subscriber.id,
                Subscriber.email,
            )
            .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
            .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
            .order_by(Delivery.id)
        ).all()
    welcome = {email: (v, version) for lesson, v, version, _, email in rows if lesson == "hello"}
    assert len(welcome) == 30
    for lesson, variant, _, reader, email in rows:
        if lesson == "hello":  # the hash the pass used, and the body it sent
            expected = "ab"[assign(reader, "trial", "hello", 2)]
            assert variant == expected
            text = smtp_server.to(email)[0].text()
            assert ("story welcome" in text) == (variant == "b")
            assert ("plain welcome" in text) == (variant == "a")
        else:
            assert variant is None  # a lesson without variants
            assert "The same for everyone." in smtp_server.to(email)[1].text()
    assert {v for v, _ in welcome.values()} == {"a", "b"}
    assert len({version for _, version in welcome.values()}) == 2  # each rendered once
