"""The bounce mailbox against a real Dovecot on loopback: DSNs from Postfix and Exim and an
ARF complaint are APPENDed over IMAP, the worker's job reads them before its pass, and
what it handled moves to drip-processed while an out-of-office reply stays put."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from pathlib import Path
from string import Template

import pytest
from sqlalchemy import func, select

from drip.core.clock import FrozenClock
from drip.core.config import Settings
from drip.deliverability import mailbox as mailbox_module
from drip.deliverability.bounces import Policy
from drip.deliverability.mailbox import SKIPPED, BounceMailbox, parse_report
from drip.deliverability.sending_pause import sending_paused
from drip.deliverability.verp import return_path
from drip.jobs.worker import dispatch_job
from drip.services import Services, build_services
from drip.store.models import (
    BounceEvent,
    Delivery,
    EnrollmentStatus,
    SendingPause,
    Subscriber,
)
from tests.conftest import TESTS, make_settings
from tests.deliverability.test_bounces import (
    add_sent_deliveries,
    sign_up,
    snapshot,
    statuses,
    subscriber,
)
from tests.imap import PASSWORD, USER, Dovecot, start_dovecot
from tests.query_plans import statements
from tests.smtp import Received, SmtpServer

FIXTURES = TESTS / "fixtures" / "bounces"
BOUNCES = "bounces@drip.test"


@pytest.fixture
def dovecot(request: pytest.FixtureRequest) -> Iterator[Dovecot]:
    """Dovecot as it is or, parametrized "no-move", advertising no MOVE (drip copies, then
    deletes)."""
    move = getattr(request, "param", "move") == "move"
    server = start_dovecot("" if move else "IMAP4rev1 LITERAL+ UIDPLUS")
    yield server
    server.stop()


@pytest.fixture
def settings(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, dovecot: Dovecot
) -> Settings:
    return make_settings(
        tmp_path,
        sqlite_url,
        smtp_url=smtp_server.url,
        bounce_address=BOUNCES,
        bounce_imap_url=dovecot.url,
    )


@pytest.fixture
def svc(settings: Settings, clock: FrozenClock) -> Iterator[Services]:
    services = build_services(settings, clock)
    yield services
    services.engine.dispose()


@pytest.fixture
def welcome(svc: Services, smtp_server: SmtpServer, clock: FrozenClock) -> Received:
    sign_up(svc, "ada@example.org")
    svc.dispatcher().run_pass(clock())
    (message,) = smtp_server.messages
    return message


def fixture(name: str, *, verp: str, message_id: str, recipient: str = "ada@example.org") -> bytes:
    text = Template((FIXTURES / name).read_text()).substitute(
        VERP=verp, MESSAGE_ID=message_id, RECIPIENT=recipient
    )
    return text.replace("\n", "\r\n").encode()


class Mailbox:
    """The test's own IMAP session: put mail in, see where it went."""

    def __init__(self, server: Dovecot) -> None:
        self.imap = imaplib.IMAP4("127.0.0.1", server.port)
        self.imap.login(USER, PASSWORD)

    def append(self, raw: bytes) -> None:
        typ, _ = self.imap.append("INBOX", None, None, raw)
        assert typ == "OK"

    def subjects(self, folder: str) -> list[tuple[str, str]]:
        """(Subject, flags) of each message in `folder`."""
        typ, count = self.imap.select(f'"{folder}"', readonly=True)
        if typ != "OK" or count[0] == b"0":
            return []
        typ, data = self.imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        found = []
        for item in data:
            if isinstance(item, tuple):
                subject = item[1].decode().strip().removeprefix("Subject: ")
                found.append((subject, item[0].decode()))
        return found

    def close(self) -> None:
        self.imap.logout()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Iterator[Mailbox]:
    box = Mailbox(dovecot)
    yield box
    box.close()


@pytest.mark.parametrize("dovecot", ["move", "no-move"], indirect=True)
def test_postfix_hard_bounce_in_the_mailbox_suppresses_and_moves_and_leaves_the_rest(
    svc: Services, welcome: Received, mailbox: Mailbox, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    message_id = welcome.message["Message-ID"]
    assert welcome.sender.startswith("bounces+d")
    mailbox.append(fixture("postfix-hard.eml", verp=welcome.sender, message_id=message_id))
    mailbox.append(fixture("out-of-office.eml", verp=welcome.sender, message_id=message_id))

    clock.advance(days=3)
    dispatch_job(svc, svc.dispatcher())  # what the scheduler runs: the mailbox, then the pass

    reader = subscriber(svc, "ada@example.org")
    assert reader.suppressed_reason == (
        "hard bounce (mailbox, bounce mailbox): 5.1.1 smtp; 550 5.1.1 <ada@example.org>: "
        "Recipient address rejected: User unknown in virtual mailbox table"
    )
    assert statuses(svc) == {"tiny": EnrollmentStatus.SUPPRESSED}
    assert len(smtp_server.messages) == 1  # lesson two did not go out
    with svc.sessions() as session:
        (event,) = session.scalars(select(BounceEvent))
        assert (event.matched_by, event.source) == ("verp", "mailbox")
    assert [s for s, _ in mailbox.subjects("drip-processed")] == [
        "Undelivered Mail Returned to Sender"
    ]
    ((subject, flags),) = mailbox.subjects("INBOX")
    assert subject == "Automatic reply: Welcome, Ada"
    assert "\\Seen" not in flags and SKIPPED in flags

    before = snapshot(svc)
    with svc.sessions() as session:
        result = BounceMailbox(svc.settings.bounce_imap_url).run(
            session, clock(), Policy.from_settings(svc.settings)
        )
    assert result.read == 0  # nothing is read twice
    assert snapshot(svc) == before


def test_exim_soft_bounce_matches_by_message_id_and_counts(
    svc: Services, welcome: Received, mailbox: Mailbox, clock: FrozenClock
) -> None:
    # A forwarding relay rewrote the envelope: only the returned Message-ID is left.
    mailbox.append(fixture("exim-soft.eml", verp=BOUNCES, message_id=welcome.message["Message-ID"]))

    dispatch_job(svc, svc.dispatcher())

    with svc.sessions() as session:
        (event,) = session.scalars(select(BounceEvent))
        assert (event.kind, event.matched_by, event.outcome) == (
            "soft",
            "message-id",
            "soft bounce 1 of 3",
        )
        assert event.diagnostic == "4.0.0 smtp; 452 4.2.2 <ada@example.org>: Mailbox full"
    assert subscriber(svc, "ada@example.org").suppressed_at is None
    assert [s for s, _ in mailbox.subjects("drip-processed")] == [
        "Mail delivery failed: returning message to sender"
    ]
    assert mailbox.subjects("INBOX") == []


def test_arf_complaint_in_the_mailbox_unsubscribes_the_reader(
    svc: Services, welcome: Received, mailbox: Mailbox
) -> None:
    mailbox.append(
        fixture("arf-complaint.eml", verp=welcome.sender, message_id="<somewhere-else@example.net>")
    )

    dispatch_job(svc, svc.dispatcher())

    assert statuses(svc) == {"tiny": EnrollmentStatus.UNSUBSCRIBED}
    assert subscriber(svc, "ada@example.org").suppressed_reason == (
        "spam complaint (mailbox, bounce mailbox): ARF abuse from example.org"
    )
    assert [s for s, _ in mailbox.subjects("drip-processed")] == ["FW: Welcome, Ada"]


def test_a_dsn_naming_only_the_recipient_is_recorded_unverified_and_changes_nobody(
    svc: Services, welcome: Received, mailbox: Mailbox
) -> None:
    # No signed return path, no Message-ID drip signed: anyone could have written it.
    report = fixture("postfix-hard.eml", verp=BOUNCES, message_id="<not-ours@mail.example.org>")
    mailbox.append(report)
    mailbox.append(report)  # the relay sent it twice

    dispatch_job(svc, svc.dispatcher())

    with svc.sessions() as session:
        (event,) = session.scalars(select(BounceEvent))
        assert (event.matched_by, event.verified) == ("address", False)
        assert event.outcome == "unverified: changed nobody"
    assert subscriber(svc, "ada@example.org").suppressed_at is None
    assert len(mailbox.subjects("drip-processed")) == 2
    assert mailbox.subjects("INBOX") == []


def test_a_report_for_no_known_reader_is_recorded_and_moved(
    svc: Services, mailbox: Mailbox
) -> None:
    mailbox.append(
        fixture(
            "postfix-hard.eml",
            verp=BOUNCES,
            message_id="<x@example.net>",
            recipient="stranger@example.net",
        )
    )

    dispatch_job(svc, svc.dispatcher())

    with svc.sessions() as session:
        (event,) = session.scalars(select(BounceEvent))
        assert (event.email, event.matched_by) == ("stranger@example.net", "none")
    assert len(mailbox.subjects("drip-processed")) == 1


def test_the_fixtures_parse_as_the_reports_they_are() -> None:
    policy = Policy(secret="s", domain="drip.test")
    mid = "<drip.7.welcome@drip.test>"
    postfix = parse_report(fixture("postfix-hard.eml", verp=BOUNCES, message_id=mid), policy)
    exim = parse_report(fixture("exim-soft.eml", verp=BOUNCES, message_id=mid), policy)
    arf = parse_report(fixture("arf-complaint.eml", verp=BOUNCES, message_id=mid), policy)
    away = parse_report(fixture("out-of-office.eml", verp=BOUNCES, message_id=mid), policy)
    assert [(r.kind, r.email, r.message_id) for r in postfix.reports] == [
        ("hard", "ada@example.org", mid)
    ]
    assert [(r.kind, r.message_id) for r in exim.reports] == [("soft", mid)]
    assert [(r.kind, r.email, r.return_path) for r in arf.reports] == [
        ("complaint", "ada@example.org", BOUNCES)
    ]
    assert (away.kind, away.reports) == ("other", [])


def test_forged_reports_in_the_mailbox_unsubscribe_nobody_and_do_not_pause_sending(
    svc: Services, welcome: Received, mailbox: Mailbox, clock: FrozenClock
) -> None:
    """Anyone may write to the bounce address: four forged reports (Message-IDs guessed from
    enrollment numbers, one made up in today's shape, a bare address, a VERP token with a
    made-up signature) change nobody, while a genuine DSN quoting drip's signed id does."""
    sent = add_sent_deliveries(svc, 600, clock)
    with svc.sessions() as session:
        victims = [
            (d.enrollment_id, d.enrollment.subscriber.email)
            for d in (session.get(Delivery, i) for i in sent[-4:])  # not Ada's
            if d is not None
        ]
    (a, a_email), (b, b_email), (c, c_email), (_, d_email) = victims
    made_up = f"<drip.{c}.welcome.0123456789abcdef.0123456789abcdef@example.org>"
    forged = [
        fixture(
            "arf-complaint.eml",
            verp=BOUNCES,
            message_id=f"<drip.{a}.welcome@drip.test>",
            recipient=a_email,
        ),
        fixture(
            "arf-complaint.eml",
            verp=BOUNCES,
            message_id=f"<drip.{b}.welcome@drip.test>",
            recipient=b_email,
        ),
        fixture("arf-complaint.eml", verp=BOUNCES, message_id=made_up, recipient=c_email),
        fixture(  # a bare address, under a VERP token with a made-up signature
            "postfix-hard.eml",
            verp=f"bounces+d{sent[-1]}-0123456789abcdef@drip.test",
            message_id="<elsewhere@example.net>",
            recipient=d_email,
        ),
    ]
    for raw in forged:
        mailbox.append(raw)

    dispatch_job(svc, svc.dispatcher())

    with svc.sessions() as session:
        assert sending_paused(session) is None
        events = session.scalars(select(BounceEvent).order_by(BounceEvent.id)).all()
        assert [(e.email, e.verified, e.outcome) for e in events] == [
            (email, False, "unverified: changed nobody")
            for email in (a_email, b_email, c_email, d_email)
        ]
        for email in (a_email, b_email, c_email, d_email):
            reader = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
            assert reader.suppressed_at is None
            assert [e.status for e in reader.enrollments] == [EnrollmentStatus.COMPLETED]
    assert len(mailbox.subjects("drip-processed")) == 4

    genuine = fixture("postfix-hard.eml", verp=BOUNCES, message_id=welcome.message["Message-ID"])
    mailbox.append(genuine)  # the envelope rewritten: only drip's signed Message-ID is left
    dispatch_job(svc, svc.dispatcher())

    assert subscriber(svc, "ada@example.org").suppressed_at is not None
    with svc.sessions() as session:
        event = session.scalars(select(BounceEvent).order_by(BounceEvent.id.desc())).first()
        assert event is not None
        assert (event.matched_by, event.verified, event.outcome) == (
            "message-id",
            True,
            "suppressed",
        )


def test_a_pass_reads_at_most_its_share_of_the_mailbox_and_the_rest_waits_in_order(
    svc: Services, mailbox: Mailbox, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of reports (a bad import's hard bounces) would hold the pass's sends while
    each is recorded: a pass reads `PER_PASS` messages, oldest first, and says how many wait."""
    monkeypatch.setattr(mailbox_module, "PER_PASS", 2)
    strangers = [f"stranger{n}@example.net" for n in range(3)]
    for email in strangers:
        mailbox.append(
            fixture("postfix-hard.eml", verp=BOUNCES, message_id="<x@example.net>", recipient=email)
        )
    policy = Policy.from_settings(svc.settings)
    url = svc.settings.bounce_imap_url

    with svc.sessions() as session:
        first = BounceMailbox(url).run(session, clock(), policy)
    assert (first.read, first.handled, first.waiting) == (2, 2, 1)
    assert first.summary().endswith(", 1 more wait for the next pass")
    with svc.sessions() as session:
        second = BounceMailbox(url).run(session, clock(), policy)
        events = session.scalars(select(BounceEvent).order_by(BounceEvent.id)).all()
    assert (second.read, second.waiting) == (1, 0)
    assert "wait" not in second.summary()
    assert [e.email for e in events] == strangers
    assert len(mailbox.subjects("drip-processed")) == 3


def test_hard_bounces_over_the_limit_pause_sending_after_one_look_at_the_rates(
    svc: Services, welcome: Received, mailbox: Mailbox, clock: FrozenClock
) -> None:
    """Forty genuine hard bounces among 601 sends (over 5% pauses): the pass's read records
    them all, then asks the guardrail once, where asking after each cost up to a third of
    the read (bench/bounces.py)."""
    sent = add_sent_deliveries(svc, 600, clock)
    with svc.sessions() as session:
        bounced = [session.get(Delivery, i) for i in sent[:40]]
        for delivery in bounced:
            assert delivery is not None
            mailbox.append(
                fixture(
                    "postfix-hard.eml",
                    verp=return_path(svc.settings, BOUNCES, delivery.id, delivery.enrollment_id),
                    message_id="<elsewhere@example.net>",
                    recipient=delivery.enrollment.subscriber.email,
                )
            )

    with statements(svc.engine) as seen, svc.sessions() as session:
        result = BounceMailbox(svc.settings.bounce_imap_url).run(
            session, clock(), Policy.from_settings(svc.settings)
        )
    looks = [statement for statement, _ in seen if "sending_pauses" in statement]

    assert [r.outcome for r in result.recorded] == ["suppressed"] * 40
    with svc.sessions() as session:
        assert "hard-bounce rate" in (sending_paused(session) or "")
        assert session.scalar(select(func.count(SendingPause.id))) == 1
    # the open pause, the last resume, the new pause: once for the read, not once a report
    assert len(looks) == 3
