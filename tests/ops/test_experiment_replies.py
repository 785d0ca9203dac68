"""`goal: reply`: a reader of a variant reached the goal when drip matched a reply of theirs
to that lesson (drip.replies), taken in through the real matching from the signed Reply-To
of the message the real pass sent; an auto-reply, a forged one and a reply to another lesson
do not count."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drip.core.clock import FrozenClock
from drip.mail.reply_address import reply_token
from drip.ops.experiments import experiment
from drip.replies.incoming import Incoming
from drip.replies.matching import ReplyPolicy, take
from drip.services import Services, build_services
from tests.conftest import CHEAP_HASHER, courses_beside_tiny, enroll, make_settings
from tests.smtp import Received, SmtpServer

REPLY = "reply@drip.test"
ASKING = {
    "sequence.yaml": (
        'title: "Asking"\npromise: "Ask."\nsender: "Ada <ada@example.org>"\ntimezone: UTC\n'
        'send_window:\n  start: "00:00"\n  end: "23:59"\ndouble_opt_in: false\n'
    ),
    "01-ask.md": (
        '---\nsubject: "Tell me one thing"\ndelay: 0\ngoal: reply\n'
        'variants:\n  b:\n    subject: "What is your exam date?"\n---\nReply and say.\n'
    ),
    "02-next.md": '---\nsubject: "Next"\ndelay: 1d\n---\nNext.\n',
}


@pytest.fixture
def asking(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[Services]:
    root = courses_beside_tiny(tmp_path, {"asking": ASKING})
    settings = make_settings(
        tmp_path, backend_url, smtp_url=smtp_server.url, sequences_dir=root, reply_address=REPLY
    )
    svc = build_services(settings, clock, password_hasher=CHEAP_HASHER)
    yield svc
    svc.engine.dispose()


def answer(
    svc: Services, message: Received, now: FrozenClock, *headers: tuple[str, str], to: str = ""
) -> str:
    """The reader's reply to `message`, taken in as the mailbox takes it; its status."""
    incoming = Incoming(
        source="mailbox",
        key=f"<{message.recipients[0]}-{message.subject}-{len(headers)}{to}@example.org>",
        sender=message.recipients[0],
        recipients=(to or message.message["Reply-To"],),
        subject=f"Re: {message.subject}",
        body="June the 3rd.",
        headers=dict(headers),
    )
    with svc.sessions() as session:
        taken = take(
            session, svc.content.library(), incoming, now(), ReplyPolicy.from_settings(svc.settings)
        )
        session.commit()
    return taken.status


def test_goal_reply_counts_the_readers_whose_reply_to_the_lesson_was_matched(
    asking: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    emails = [f"r{number}@example.org" for number in range(10)]
    for email in emails:
        enroll(asking, email, "asking")
    dispatcher = asking.dispatcher()
    dispatcher.run_pass(clock())
    first = {m.recipients[0]: m for m in smtp_server.messages}
    assert set(first) == set(emails)
    clock.advance(hours=1)
    repliers = emails[:4]
    assert {answer(asking, first[email], clock) for email in repliers} == {"matched"}
    # an auto-reply and a forged address from readers who did not answer: not counted
    auto = ("auto-submitted", "auto-replied")
    assert answer(asking, first[emails[5]], clock, auto) == "automatic"
    forged = f"reply+{reply_token('guess', 1, '01-ask')}@drip.test"
    assert answer(asking, first[emails[6]], clock, to=forged) == "unmatched"
    # a reply to the next lesson is no reply to this one
    clock.advance(days=1, minutes=1)
    dispatcher.run_pass(clock())
    second = {m.recipients[0]: m for m in smtp_server.messages if m.subject == "Next"}
    assert answer(asking, second[emails[7]], clock) == "matched"

    sequence = asking.content.library().sequences["asking"]
    with asking.sessions() as session:
        found = experiment(session, sequence, sequence.lessons[0])
    subject_of = {email: first[email].subject for email in emails}
    for arm in found.arms:
        mine = [email for email in emails if subject_of[email] == arm.subject]
        assert arm.readers == len(mine)
        assert arm.goals == len([email for email in mine if email in repliers])
    assert sum(arm.goals for arm in found.arms) == 4
