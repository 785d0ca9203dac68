"""A test send: one lesson, or the confirmation email, through the real transport to an
author's or operator's own address, marked [TEST], with links that lead to a page saying
it was a test, never to a reader (drip.mail.links.SampleLinks).

The admin's "Send me a test" buttons (a lesson, the confirmation email, a broadcast) go to
any address typed, so each operator may send at most TESTS_PER_MINUTE of them a minute,
counted in the database (drip.store.ratelimit) so every web worker sees the same count."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from drip.audience.subscriptions import normalize_email
from drip.content.sequences import Sequence
from drip.mail.links import Links, sample_links
from drip.mail.message_ids import message_id_for
from drip.mail.render import SAMPLE_READER, MessageTemplate, Reader, Renderer
from drip.mail.transports import Transport, envelope_sender
from drip.store.ratelimit import hit, window_start

CONFIRMATION = "confirm"  # the lesson name that means "the confirmation email"


TESTS_PER_MINUTE = 10
_MINUTE = timedelta(minutes=1)


class UnknownLesson(LookupError):
    """The sequence has no lesson of that name; the message lists the ones it has."""


class TooManyTests(Exception):
    """The operator sent TESTS_PER_MINUTE tests this minute; the message says until when."""


def count_test(session: Session, operator: str, now: datetime) -> None:
    """Count one test send by `operator` before it is sent; raise TooManyTests past the
    minute's limit (nothing is sent then). The caller commits the count at once, so tests
    sent together from two windows each see the other's."""
    if hit(session, f"test-send:{operator}", TESTS_PER_MINUTE, now, _MINUTE):
        return
    again = window_start(now, _MINUTE) + _MINUTE
    raise TooManyTests(
        f"{operator} has sent {TESTS_PER_MINUTE} tests this minute, the most drip allows "
        f"an operator; try again after {again:%H:%M:%S} UTC"
    )


def test_template(renderer: Renderer, sequence: Sequence, lesson: str) -> MessageTemplate:
    """The message to try, its subject marked [TEST]."""
    if lesson == CONFIRMATION:
        template = renderer.confirmation(sequence)
    else:
        found = sequence.lesson_named(lesson)
        if found is None:
            names = ", ".join([CONFIRMATION, *(item.key for item in sequence.lessons)])
            raise UnknownLesson(f"no lesson {lesson!r} in {sequence.slug} (lessons: {names})")
        template = renderer.lesson(sequence, found)
    return dataclasses.replace(template, subject=f"[TEST] {template.subject}")


def send_test(
    renderer: Renderer,
    links: Links,
    transport: Callable[[], Transport],
    sequence: Sequence,
    lesson: str,
    to: str,
    now: datetime,
    first_name: str = SAMPLE_READER.first_name,
) -> str:
    """Send it and return its Message-ID; raises SendError as a real send would."""
    address = normalize_email(to)
    template = test_template(renderer, sequence, lesson)
    reader = Reader(address, first_name, SAMPLE_READER.subscriber_id, SAMPLE_READER.enrollment_id)
    secret = renderer.settings.secret_key  # signed like any other; enrollment 0 is no one's
    mid = message_id_for(secret, reader.enrollment_id, "test", template.sender, renderer.domain)
    message = template.build(reader, sample_links(links, "test"), mid, now)
    with transport() as relay:
        relay.send(
            envelope_sender(template.sender),
            address,
            message,
            name=f"{now:%Y%m%dT%H%M%S}-test-{sequence.slug}-{lesson}",
        )
    return mid
