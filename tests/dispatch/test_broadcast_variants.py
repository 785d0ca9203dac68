"""A broadcast's test of a second subject, end to end: a share of the readers (a hash of the
reader and the broadcast) gets a or b at once through the real pass, the rest wait; their
clicks through the real tracked links choose the winner when the wait is over, and the
rest get it; each recipient row records the variant, and the broadcast's page shows it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, update

from drip.app import create_app
from drip.core.clock import FrozenClock
from drip.dispatch.broadcast_variants import HELD, read_test, split_recipients
from drip.dispatch.broadcast_winner import ArmClicks, winner_of
from drip.dispatch.broadcasts import KEYS, parse_broadcast, schedule
from drip.services import Services
from drip.store.models import Broadcast, BroadcastRecipient, Subscriber
from tests.conftest import CHEAP_HASHER, courses_beside_tiny, enroll, make_settings
from tests.smtp import SmtpServer
from tests.web.test_admin_access import add_operator, log_in

BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605.1", "Accept": "text/html,*/*"}
READERS = 60
SUBJECT_A = "A new post: the interview day"
SUBJECT_B = "The interview day, hour by hour"
WIDE = {
    "sequence.yaml": (
        'title: "Wide"\npromise: "All day."\nsender: "Ada <ada@example.org>"\ntimezone: UTC\n'
        'send_window:\n  start: "00:00"\n  end: "23:59"\ndouble_opt_in: false\n'
        "track_links: true\n"
    ),
    "01-hi.md": '---\nsubject: "Hi"\ndelay: 0\n---\nHi.\n',
    "02-later.md": '---\nsubject: "Later"\ndelay: 30d\n---\nLater.\n',
}
NEWS = f"""---
subject: "{SUBJECT_A}"
to: wide
variants:
  b:
    subject: "{SUBJECT_B}"
test_share: 50%
decide_after: 4h
---
Read [the post](https://blog.example.org/post).
"""


@pytest.fixture
def app(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Flask]:
    root = courses_beside_tiny(tmp_path, {"wide": WIDE})
    settings = make_settings(
        tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=root, batch_size=500
    )
    application = create_app(settings, clock=clock, password_hasher=CHEAP_HASHER)
    application.config["TESTING"] = True
    yield application
    application.extensions["drip"].engine.dispose()


def variants(svc: Services) -> dict[str, str | None]:
    """Each reader's recorded variant, by address."""
    with svc.sessions() as session:
        rows = session.execute(
            select(BroadcastRecipient.subscriber_id, BroadcastRecipient.variant)
        ).all()
        emails = {i: e for i, e in session.execute(select(Subscriber.id, Subscriber.email))}
    return {emails[subscriber]: variant for subscriber, variant in rows}


def test_the_test_share_gets_a_or_b_and_the_rest_the_subject_with_more_clicks(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc: Services = app.extensions["drip"]
    for number in range(READERS):
        enroll(svc, f"reader{number}@example.org", "wide")
    svc.dispatcher().run_pass(clock())  # the first lessons
    lessons = len(smtp_server.messages)
    library = svc.content.library()
    spec = parse_broadcast(NEWS, Path("news.md"), library)
    with svc.sessions() as session:
        broadcast_id = schedule(session, library, spec, clock(), clock()).id
    recorded = variants(svc)
    counts = Counter(recorded.values())
    assert counts["a"] > 5 and counts["b"] > 5 and counts[HELD] > 15
    assert counts["a"] + counts["b"] + counts[HELD] == READERS

    svc.dispatcher().run_pass(clock())
    sent = {m.recipients[0]: m for m in smtp_server.messages[lessons:]}
    assert {recorded[e] for e in sent} == {"a", "b"}  # the held readers wait
    assert all(
        m.subject == (SUBJECT_B if recorded[e] == "b" else SUBJECT_A) for e, m in sent.items()
    )

    clock.advance(hours=1)
    web = app.test_client()
    for email, message in sent.items():  # every b reader clicks, one a reader
        if recorded[email] == "b" or email == min(e for e in sent if recorded[e] == "a"):
            link = re.search(r"http://drip\.test(/l/\S+?)\)", message.text())
            assert link is not None
            assert web.get(link[1], headers=BROWSER).status_code == 302
    clock.advance(hours=2, minutes=59)
    svc.dispatcher().run_pass(clock())
    assert len(smtp_server.messages) == lessons + len(sent)  # 4 hours are not over yet

    clock.advance(minutes=2)
    svc.dispatcher().run_pass(clock())
    rest = smtp_server.messages[lessons + len(sent) :]
    assert len(rest) == counts[HELD]
    assert {m.subject for m in rest} == {SUBJECT_B}
    after = variants(svc)
    assert Counter(after.values()) == Counter(a=counts["a"], b=counts["b"] + counts[HELD])
    with svc.sessions() as session:
        broadcast = session.get(Broadcast, broadcast_id)
        assert broadcast is not None
        assert broadcast.audience["decided"]["winner"] == "b"

    add_operator(svc)
    owner = app.test_client()
    assert log_in(owner).status_code == 302
    page = owner.get(f"/admin/broadcasts/{broadcast_id}").text
    assert "Winner: b, chosen" in page
    assert 'id="test-b"' in page and SUBJECT_B in page


def test_the_split_is_the_same_for_the_same_reader_and_broadcast(
    app: Flask, clock: FrozenClock
) -> None:
    svc: Services = app.extensions["drip"]
    for number in range(20):
        enroll(svc, f"reader{number}@example.org", "wide")
    library = svc.content.library()
    spec = parse_broadcast(NEWS, Path("news.md"), library)
    with svc.sessions() as session:
        schedule(session, library, spec, clock(), clock())
    first = variants(svc)
    with svc.sessions() as session:
        session.execute(update(BroadcastRecipient).values(variant=None))
        broadcast = session.scalars(select(Broadcast)).one()
        split_recipients(session, broadcast)
        session.commit()
    assert variants(svc) == first


def test_more_clicks_per_reader_wins_and_a_tie_keeps_a() -> None:
    assert winner_of(ArmClicks("a", "", 100, 10), ArmClicks("b", "", 50, 6)) == "b"
    assert winner_of(ArmClicks("a", "", 100, 10), ArmClicks("b", "", 50, 5)) == "a"
    assert winner_of(ArmClicks("a", "", 0, 0), ArmClicks("b", "", 0, 0)) == "a"


def problems_of(meta: dict[str, object]) -> list[str]:
    return [p.message for p in read_test(meta, Path("news.md"), KEYS)[1]]


def test_variants_test_share_and_decide_after_are_checked_with_defaults() -> None:
    test, problems = read_test({"variants": {"b": {"subject": "B"}}}, Path("n.md"), KEYS)
    assert problems == []
    assert test == {"variants": {"b": {"subject": "B"}}, "test_share": "20%", "decide_after": "4h"}
    assert problems_of({"variants": {"c": {"subject": "C"}}}) == [
        "variants: a broadcast tries one, b, with its subject"
    ]
    assert problems_of({"variants": {"b": {"body": "x"}}}) == [
        "variants: b changes the subject or the preheader"
    ]
    assert problems_of({"variants": {"b": {"subject": "B"}}, "test_share": "0%"}) == [
        "test_share: '0%' is not a share such as 20%"
    ]
    assert problems_of({"variants": {"b": {"subject": "B"}}, "decide_after": "30d"}) == [
        "decide_after: '30d' is not a wait such as 4h, 90m or 1d (≤ 14d)"
    ]
    assert problems_of({"test_share": "20%"}) == ["test_share and decide_after need variants: b"]
    assert "unknown key 'varaints'" in problems_of({"varaints": {}})[0]
