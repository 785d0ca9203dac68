"""Broadcasts: every eligible reader of the chosen sequences gets one once, in their own
send window, with an unsubscribe that means "no more broadcasts" or "everything"; the
excluded never do; a worker killed at random during one loses nobody."""

from __future__ import annotations

import math
import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from drip.app import create_app
from drip.audience.leaving import suppress, unsubscribe
from drip.content.schedule import reader_zone
from drip.core.clock import FrozenClock
from drip.dispatch.broadcasts import (
    BroadcastError,
    audience_count,
    create_draft,
    parse_broadcast,
    progress,
    read_broadcast,
    schedule,
    send_test,
    template_for,
)
from drip.mail.message_ids import read_message_ids
from drip.services import Services, build_services
from drip.store.db import make_engine
from drip.store.models import Enrollment, RecipientStatus, Subscriber
from tests.bulk import add_due_readers
from tests.conftest import courses_beside_tiny, enroll, make_settings
from tests.dispatch.test_crash_recovery import DRIP, received_at_least, wait_until
from tests.smtp import SmtpServer

NEWS = """---
subject: "A new post: the interview day, hour by hour"
preheader: "From the hotel lobby to the thank-you note."
to: [tiny, other]
---
Hi {{ first_name|default("there") }},

A new post is up. [Leave]({{ unsubscribe_url }})
"""
OTHER = """title: "Other course"
promise: "A second course."
sender: "Tiny Author <author@example.org>"
timezone: Asia/Kolkata
send_window: {start: "18:00", end: "20:00"}
"""
# A second course beside the tiny one, in another time zone: a file name to its text.
OTHER_COURSE = {
    "sequence.yaml": OTHER,
    "01-hi.md": '---\nsubject: "Other: hi"\ndelay: 0\n---\nHi.\n',
    "02-later.md": '---\nsubject: "Other: later"\ndelay: 30d\n---\nLater.\n',
}


@pytest.fixture
def courses(tmp_path: Path) -> Path:
    return courses_beside_tiny(tmp_path, {"other": OTHER_COURSE})


@pytest.fixture
def svc(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock, courses: Path
) -> Services:
    return build_services(
        make_settings(tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=courses), clock
    )


def news(tmp_path: Path, text: str = NEWS) -> Path:
    path = tmp_path / "new-post.md"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_a_broadcast_reaches_each_eligible_reader_once_in_their_window_and_none_else(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    enroll(svc, "ada@example.org", "tiny")
    enroll(svc, "ada@example.org", "other")  # in both: one email
    enroll(svc, "bo@example.org", "other", timezone="Asia/Kolkata")
    enroll(svc, "pending@example.org", "tiny", confirmed=False)
    suppressed = enroll(svc, "blocked@example.org", "tiny")
    gone = enroll(svc, "gone@example.org", "other")
    with svc.sessions() as session:
        suppress(
            session,
            session.get(Enrollment, suppressed).subscriber,  # type: ignore[union-attr]
            clock(),
            "operator",
        )
        unsubscribe(session, gone, clock(), everything=True, how="test")
        session.commit()
    svc.dispatcher().run_pass(clock())  # the welcomes
    library = svc.content.library()
    spec = read_broadcast(news(tmp_path), library)
    with svc.sessions() as session:
        assert audience_count(session, spec, clock())[0] == 2
        broadcast = schedule(session, library, spec, clock(), clock())

    for _ in range(48):
        svc.dispatcher().run_pass(clock())
        clock.advance(minutes=30)

    got = [
        (r, m)
        for m in smtp_server.messages
        for r in m.recipients
        if m.subject.startswith("A new post")
    ]
    assert sorted(r for r, _ in got) == ["ada@example.org", "bo@example.org"]
    for recipient, message in got:
        zone = reader_zone(
            "Asia/Kolkata" if recipient == "bo@example.org" else "America/New_York", "UTC"
        )
        sent = message.message["Date"].datetime.astimezone(zone)
        assert (9 <= sent.hour < 11) if recipient == "ada@example.org" else (18 <= sent.hour < 20)
        assert "/stop/" in message.message["List-Unsubscribe"]
        assert "<broadcasts." in message.message["List-Id"]
    with svc.sessions() as session:
        assert progress(session, broadcast.id) == Counter({RecipientStatus.SENT: 2})


def test_a_reader_who_leaves_everything_before_their_turn_does_not_get_it(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    enrollment_id = enroll(svc, "ada@example.org", "tiny")
    library = svc.content.library()
    with svc.sessions() as session:
        schedule(session, library, read_broadcast(news(tmp_path), library), clock(), clock())
        unsubscribe(session, enrollment_id, clock(), everything=True, how="test")
        session.commit()
    for _ in range(6):
        svc.dispatcher().run_pass(clock())
        clock.advance(hours=1)
    assert not [m for m in smtp_server.messages if m.subject.startswith("A new post")]


def test_the_broadcast_unsubscribe_stops_broadcasts_but_keeps_the_course(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock, courses: Path
) -> None:
    app = create_app(
        make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=courses),
        clock=clock,
    )
    svc: Services = app.extensions["drip"]
    enroll(svc, "ada@example.org", "tiny")
    library = svc.content.library()
    with svc.sessions() as session:
        schedule(session, library, read_broadcast(news(tmp_path), library), clock(), clock())
    clock.advance(hours=1)
    svc.dispatcher().run_pass(clock())
    (message,) = [m for m in smtp_server.messages if m.subject.startswith("A new post")]
    stop = re.search(r"http://drip\.test(/stop/[^>]+)>", message.message["List-Unsubscribe"])
    assert stop
    web: FlaskClient = app.test_client()

    one_click = web.post(stop[1], data={"List-Unsubscribe": "One-Click"})

    assert one_click.status_code == 200
    with svc.sessions() as session:
        ada = session.scalars(select(Subscriber)).one()
        assert ada.broadcasts_off_at is not None
        assert {e.status for e in ada.enrollments} == {"active"}
        schedule(session, library, read_broadcast(news(tmp_path), library), clock(), clock())
    assert audience_count_for(svc, tmp_path) == 0
    app.extensions["drip"].engine.dispose()


def audience_count_for(svc: Services, tmp_path: Path) -> int:
    with svc.sessions() as session:
        spec = read_broadcast(news(tmp_path), svc.content.library())
        return audience_count(session, spec, svc.clock())[0]


def test_a_broadcast_file_with_mistakes_says_what_and_where(svc: Services, tmp_path: Path) -> None:
    bad = news(
        tmp_path,
        NEWS.replace("to: [tiny, other]", "to: [tiny, nope]").replace(
            "{{ first_name", "{{ firstname"
        ),
    )
    with pytest.raises(BroadcastError) as error:
        read_broadcast(bad, svc.content.library())
    text = str(error.value)
    assert f"{bad}:2: to: no usable sequence 'nope'" in text
    assert f"{bad}:6: unknown variable 'firstname'" in text


def test_to_that_is_neither_a_course_nor_a_list_is_a_problem_not_a_crash(svc: Services) -> None:
    text = NEWS.replace("to: [tiny, other]", "to: 5")
    with pytest.raises(BroadcastError) as error:
        parse_broadcast(text, Path("news.md"), svc.content.library())
    assert "news.md:2: to: a sequence or a list of sequences" in str(error.value)


def footer_of(text: str) -> str:
    return next(line for line in text.splitlines() if "signed up for" in line)


def test_a_copy_footer_names_the_readers_own_courses_each_title_quoted(
    svc: Services, clock: FrozenClock
) -> None:
    library = svc.content.library()
    spec = parse_broadcast(NEWS, Path("news.md"), library)
    with svc.sessions() as session:
        broadcast = create_draft(session, spec, clock(), "test")

        one = template_for(svc.renderer, library, broadcast, ("other",))
        both = template_for(svc.renderer, library, broadcast, ("tiny", "other"))

    assert footer_of(one.text).endswith("you signed up for “Other course.”")
    assert "Tiny course" not in one.text and "Tiny course" not in one.html
    assert footer_of(both.text).endswith("you signed up for “Tiny course” and “Other course.”")
    assert one.list_id == both.list_id == "<broadcasts.drip.test>"


def test_a_test_send_carries_a_signed_message_id_at_the_senders_domain(
    svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    library = svc.content.library()
    spec = parse_broadcast(NEWS, Path("news.md"), library)
    with svc.sessions() as session:
        broadcast = create_draft(session, spec, clock(), "test")
        mid = send_test(
            svc.renderer, library, broadcast, svc.links, svc.transport, "me@example.org", clock()
        )

    (message,) = smtp_server.to("me@example.org")
    assert message.message["Message-ID"] == mid and mid.endswith("@example.org>")
    (signed,) = read_message_ids(svc.settings.secret_key, mid)
    assert (signed.enrollment_id, signed.label) == (0, "test")  # no reader's enrollment


@pytest.mark.slow
@pytest.mark.parametrize("sessions", [1, 3])
def test_a_worker_killed_during_a_broadcast_loses_nobody_and_duplicates_at_most_per_kill(
    tmp_path: Path,
    sqlite_url: str,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    courses: Path,
    sessions: int,
) -> None:
    """At most one copy sent twice per kill and SMTP session (DRIP_SMTP_CONNECTIONS)."""
    engine = make_engine(sqlite_url)
    addresses = add_due_readers(engine, 400, clock())
    with engine.begin() as conn:  # readers mid-course: only the broadcast is due
        conn.execute(update(Enrollment).values(due_at=clock() + timedelta(days=30)))
    engine.dispose()
    svc = build_services(
        make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=courses), clock
    )
    library = svc.content.library()
    with svc.sessions() as session:
        schedule(session, library, read_broadcast(news(tmp_path), library), clock(), clock())
    svc.engine.dispose()
    env = {
        **os.environ,
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_DATABASE_URL": sqlite_url,
        "DRIP_SEQUENCES_DIR": str(courses),
        "DRIP_SECRET_KEY": "k",
        "DRIP_BASE_URL": "http://drip.test",
        "DRIP_SMTP_URL": smtp_server.url,
        "DRIP_LEASE_SECONDS": "30",
        "DRIP_SMTP_CONNECTIONS": str(sessions),
        "DRIP_ALLOW_UNSAFE_SENDING": "true",
        "DRIP_POSTAL_ADDRESS": "1 Test Street",
    }
    rng = random.Random(20261201)
    now = clock() + timedelta(hours=1)  # inside the readers' window
    kills = 0
    while kills < 3:
        started = time.monotonic()
        worker = subprocess.Popen(
            [DRIP, "dispatch", "--now", now.isoformat()],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        target = len(smtp_server.messages) + rng.randint(20, 90)
        reached = wait_until(partial(received_at_least, smtp_server, target), 60)
        time.sleep(rng.uniform(0, 0.02))
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert reached, "the worker sent nothing within a minute"
        kills += 1
        now += timedelta(seconds=30 + math.ceil(time.monotonic() - started) + 1)
    final = subprocess.run(
        [DRIP, "dispatch", "--now", now.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr

    received = Counter(
        (r, str(m.message["Message-ID"]))
        for m in smtp_server.messages
        for r in m.recipients
        if m.subject.startswith("A new post")
    )
    assert {r for r, _ in received} == set(addresses)
    assert len(received) == len(addresses)  # one Message-ID per reader, retries reuse it
    assert sum(n - 1 for n in received.values()) <= kills * sessions
    if sessions > 1:
        assert len({m.peer for m in smtp_server.messages}) > kills + 1  # several a worker
