"""Bounces and complaints change what a reader gets: through drip's own webhook, real
dispatch passes to aiosmtpd, and the pause guardrail on the dashboard and /healthz."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Table, insert, select
from werkzeug.test import TestResponse

from drip.app import create_app
from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.core.config import ConfigError, Settings, load_settings
from drip.deliverability.bounces import Kind, Policy, Report, record_bounce, soft_streak
from drip.deliverability.sending_pause import daily_rates, sending_paused, status_line
from drip.deliverability.verp import read_verp, return_path, verp_token
from drip.mail.message_ids import new_message_id
from drip.services import Services
from drip.store.models import (
    Base,
    BounceEvent,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    Subscriber,
)
from tests.conftest import TESTS, json_body, make_settings
from tests.smtp import SmtpServer
from tests.web.test_admin_access import add_operator, csrf_token, log_in

TOKEN = "webhook-test-token"
CONSENT = Consent(source="test", text="Yes, send me the course.")
BOUNCES = "bounces@drip.test"


@pytest.fixture
def sequences(tmp_path: Path) -> Path:
    """The tiny course, and a copy of it as a second course, `tiny-two`."""
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences" / "tiny", root / "tiny")
    shutil.copytree(TESTS / "sequences" / "tiny", root / "tiny-two")
    meta = root / "tiny-two" / "sequence.yaml"
    meta.write_text(meta.read_text().replace("Tiny course", "Tiny course two"))
    return root


@pytest.fixture
def settings(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, sequences: Path
) -> Settings:
    """On SQLite and on PostgreSQL."""
    return make_settings(
        tmp_path,
        backend_url,
        smtp_url=smtp_server.url,
        webhook_token=TOKEN,
        bounce_address=BOUNCES,
        sequences_dir=sequences,
        soft_bounce_limit=2,
        metrics_token="scrape",
    )


@pytest.fixture
def svc(app: Flask) -> Services:
    services: Services = app.extensions["drip"]
    return services


@pytest.fixture
def web(app: Flask) -> Iterator[FlaskClient]:
    yield app.test_client()


def sign_up(svc: Services, email: str = "ada@example.org", slug: str = "tiny") -> int:
    with svc.sessions() as session:
        enrollment = subscribe(
            session,
            svc.content.library(),
            slug,
            email,
            svc.clock(),
            consent=CONSENT,
            first_name="Ada",
            timezone="America/New_York",
            confirmed=True,
        )
        session.commit()
        return enrollment.id


def run_days(svc: Services, clock: FrozenClock, days: int) -> None:
    dispatcher = svc.dispatcher()
    for _ in range(days * 24):
        dispatcher.run_pass(clock())
        clock.advance(minutes=60)


def hook(web: FlaskClient, payload: Any, token: str = TOKEN) -> TestResponse:
    return web.post("/webhooks/bounce", json=payload, headers={"Authorization": f"Bearer {token}"})


def snapshot(svc: Services) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to show a refused or repeated request changed nothing."""
    with svc.engine.connect() as conn:
        return {
            table.name: sorted(tuple(map(repr, row)) for row in conn.execute(select(table)))
            for table in Base.metadata.sorted_tables
        }


def subscriber(svc: Services, email: str) -> Subscriber:
    with svc.sessions() as session:
        found = session.scalar(select(Subscriber).where(Subscriber.email == email))
        assert found is not None
        session.expunge(found)
        return found


def statuses(svc: Services) -> dict[str, str]:
    with svc.sessions() as session:
        return {e.sequence: e.status for e in session.scalars(select(Enrollment))}


def test_every_message_goes_out_from_a_signed_verp_address_of_its_delivery(
    svc: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    enrollment_id = sign_up(svc)
    svc.dispatcher().run_pass(clock())

    (message,) = smtp_server.messages
    with svc.sessions() as session:
        delivery = session.scalars(select(Delivery)).one()
    token = verp_token(
        svc.settings.secret_key, delivery_id=delivery.id, enrollment_id=enrollment_id
    )
    assert message.sender == f"bounces+{token}@drip.test"
    assert read_verp(svc.settings.secret_key, message.sender, BOUNCES) == ("d", delivery.id)
    forged = message.sender.replace(f"d{delivery.id}-", f"d{delivery.id + 1}-")
    assert read_verp(svc.settings.secret_key, forged, BOUNCES) is None
    assert read_verp("another-secret", message.sender, BOUNCES) is None
    assert (
        return_path(
            make_settings(Path("/nonexistent"), "sqlite://"),
            "Tiny Author <author@example.org>",
            1,
            1,
        )
        == "author@example.org"
    )


@pytest.mark.slow
def test_reader_whose_address_hard_bounces_by_webhook_after_lesson_one_gets_no_lesson_two(
    svc: Services, web: FlaskClient, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(svc)
    svc.dispatcher().run_pass(clock())
    (welcome,) = smtp_server.to("ada@example.org")

    answer = hook(
        web,
        {
            "email": "ada@example.org",
            "type": "hard",
            "message_id": welcome.message["Message-ID"],
            "reason": "550 5.1.1 user unknown",
        },
    )
    assert answer.status_code == 200
    assert answer.json == {
        "results": [{"email": "ada@example.org", "status": "applied", "outcome": "suppressed"}]
    }
    run_days(svc, clock, 10)

    assert [m.subject for m in smtp_server.to("ada@example.org")] == ["Welcome, Ada"]
    reader = subscriber(svc, "ada@example.org")
    assert reader.suppressed_at is not None
    assert reader.suppressed_reason == "hard bounce (drip): 550 5.1.1 user unknown"
    assert statuses(svc) == {"tiny": EnrollmentStatus.SUPPRESSED}
    with svc.sessions() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.status == DeliveryStatus.SENT
        assert delivery.last_error == "hard bounce (drip): 550 5.1.1 user unknown"
        (event,) = session.scalars(select(Event).where(Event.kind == "bounced"))
        assert event.detail == (
            "hard bounce (drip): 550 5.1.1 user unknown · matched by message-id"
        )
    add_operator(svc)
    log_in(web)
    assert "hard bounce (drip): 550 5.1.1 user unknown" in web.get("/admin/deliveries").text
    timeline = web.get(f"/admin/readers/{reader.id}").text
    assert "Hard bounce" in timeline
    assert "matched by message-id" in timeline


def test_complaint_stops_every_course_for_that_reader(
    svc: Services, web: FlaskClient, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(svc, slug="tiny")
    sign_up(svc, slug="tiny-two")
    svc.dispatcher().run_pass(clock())
    first = smtp_server.to("ada@example.org")
    assert len(first) == 2

    answer = hook(
        web,
        {
            "email": "ada@example.org",
            "type": "complaint",
            "message_id": first[0].message["Message-ID"],
        },
    )
    assert json_body(answer)["results"][0]["outcome"] == "unsubscribed and suppressed"
    run_days(svc, clock, 10)

    assert len(smtp_server.to("ada@example.org")) == 2
    assert statuses(svc) == {
        "tiny": EnrollmentStatus.UNSUBSCRIBED,
        "tiny-two": EnrollmentStatus.UNSUBSCRIBED,
    }
    assert subscriber(svc, "ada@example.org").suppressed_at is not None
    with svc.sessions() as session:
        kinds = sorted(
            e.kind
            for e in session.scalars(
                select(Event).where(Event.kind.in_(["complained", "unsubscribed"]))
            )
        )
    assert kinds == ["complained", "unsubscribed", "unsubscribed"]


def _soft(svc: Services, web: FlaskClient, message: Any) -> str:
    answer = hook(
        web,
        {
            "email": message.recipients[0],
            "type": "soft",
            "message_id": message.message["Message-ID"],
            "reason": "452 4.2.2 mailbox full",
        },
    )
    return str(json_body(answer)["results"][0]["outcome"])


@pytest.mark.slow
def test_a_soft_bounce_then_a_clean_send_resets_the_count(
    svc: Services, web: FlaskClient, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(svc, "ada@example.org")  # soft, clean, soft: never two in a row
    sign_up(svc, "bob@example.org")  # soft, soft: suppressed at DRIP_SOFT_BOUNCE_LIMIT=2
    svc.dispatcher().run_pass(clock())
    assert _soft(svc, web, smtp_server.to("ada@example.org")[0]) == "soft bounce 1 of 2"
    assert _soft(svc, web, smtp_server.to("bob@example.org")[0]) == "soft bounce 1 of 2"

    run_days(svc, clock, 3)  # lesson two goes to both; only Bob's soft-bounces
    assert [m.subject for m in smtp_server.to("ada@example.org")][1] == "Lesson two"
    assert (
        _soft(svc, web, smtp_server.to("bob@example.org")[1])
        == "suppressed after 2 soft bounces in a row"
    )

    run_days(svc, clock, 4)
    ada = smtp_server.to("ada@example.org")
    assert [m.subject for m in ada] == ["Welcome, Ada", "Lesson two", "Lesson three"]
    assert _soft(svc, web, ada[2]) == "soft bounce 1 of 2"
    assert subscriber(svc, "ada@example.org").suppressed_at is None
    bob = subscriber(svc, "bob@example.org")
    assert bob.suppressed_reason is not None
    assert bob.suppressed_reason.startswith("2 soft bounces in a row; last: soft bounce")
    assert len(smtp_server.to("bob@example.org")) == 2
    with svc.sessions() as session:
        assert soft_streak(session, subscriber(svc, "ada@example.org").id) == 1


def test_a_duplicate_event_is_a_no_op(
    svc: Services, web: FlaskClient, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(svc)
    svc.dispatcher().run_pass(clock())
    event = {
        "email": "ada@example.org",
        "type": "soft",
        "reason": "mailbox full",
        "message_id": smtp_server.messages[0].message["Message-ID"],
    }
    assert json_body(hook(web, event))["results"][0]["status"] == "applied"
    before = snapshot(svc)

    again = hook(web, [event, event])

    assert again.status_code == 200
    assert [r["status"] for r in json_body(again)["results"]] == ["duplicate", "duplicate"]
    assert snapshot(svc) == before


def test_the_same_event_posted_twice_at_once_is_recorded_once(
    app: Flask, svc: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(svc)
    svc.dispatcher().run_pass(clock())
    event = {
        "email": "ada@example.org",
        "type": "hard",
        "id": "evt-1",
        "message_id": smtp_server.messages[0].message["Message-ID"],
    }
    start = threading.Barrier(2)

    def post() -> str:
        start.wait()
        return str(json_body(hook(app.test_client(), event))["results"][0]["status"])

    with ThreadPoolExecutor(2) as pool:
        answers = sorted(pool.map(lambda _n: post(), range(2)))

    assert answers == ["applied", "duplicate"]
    with svc.sessions() as session:
        assert len(session.scalars(select(BounceEvent)).all()) == 1
        assert len(session.scalars(select(Event).where(Event.kind == "bounced")).all()) == 1


def test_an_event_that_matches_nothing_is_recorded_and_counted_not_an_error(
    svc: Services, web: FlaskClient
) -> None:
    answer = hook(web, {"email": "nobody@example.org", "type": "hard"})

    assert answer.status_code == 200
    assert json_body(answer)["results"][0]["status"] == "unmatched"
    scrape = web.get("/metrics", headers={"Authorization": "Bearer scrape"}).text
    assert 'drip_bounce_events{kind="hard",matched_by="none"} 1.0' in scrape
    with svc.sessions() as session:
        row = session.scalars(select(BounceEvent)).one()
        assert (row.email, row.matched_by, row.subscriber_id) == (
            "nobody@example.org",
            "none",
            None,
        )


def test_a_wrong_token_or_a_malformed_event_is_refused_and_changes_nothing(
    svc: Services, web: FlaskClient
) -> None:
    sign_up(svc)
    before = snapshot(svc)

    assert hook(web, {"email": "ada@example.org", "type": "hard"}, token="guess").status_code == 401
    assert (
        web.post("/webhooks/bounce", json={"email": "ada@example.org", "type": "hard"}).status_code
        == 401
    )
    bad = hook(
        web,
        [
            {"email": "ada@example.org", "type": "hard"},
            {"email": "ada@example.org", "type": "permanent"},
        ],
    )
    assert bad.status_code == 400
    assert json_body(bad)["error"] == (
        "event 1: \"type\" must be hard, soft or complaint, got 'permanent'"
    )
    assert snapshot(svc) == before


def test_a_verp_address_matches_the_delivery_even_when_the_address_changed_hands(
    svc: Services, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(svc)
    svc.dispatcher().run_pass(clock())
    (message,) = smtp_server.messages
    policy = Policy.from_settings(svc.settings)
    with svc.sessions() as session:
        recorded = record_bounce(
            session,
            Report(
                "hard",
                "alias@forwarder.example",
                "mailbox",
                "test:1",
                source="mailbox",
                return_path=message.sender,
                diagnostic="5.1.1",
            ),
            clock(),
            policy,
        )
        session.commit()
        row = session.scalars(select(BounceEvent)).one()
        delivery = session.scalars(select(Delivery)).one()
    assert recorded.status == "applied"
    assert (row.matched_by, row.delivery_id) == ("verp", delivery.id)


# -- the guardrail --------------------------------------------------------------------------


def add_sent_deliveries(svc: Services, count: int, clock: FrozenClock) -> list[int]:
    """`count` readers who each got the welcome lesson an hour ago; their delivery ids."""
    subscribers = cast(Table, Subscriber.__table__)
    enrollments = cast(Table, Enrollment.__table__)
    deliveries = cast(Table, Delivery.__table__)
    sent = clock() - timedelta(hours=1)
    with svc.engine.begin() as conn:
        conn.execute(
            insert(subscribers),
            [
                {
                    "email": f"sent{n:04d}@example.org",
                    "first_name": "",
                    "timezone": "UTC",
                    "attributes": {},
                    "created_at": sent,
                }
                for n in range(count)
            ],
        )
        ids = list(
            conn.scalars(
                select(subscribers.c.id)
                .where(subscribers.c.email.like("sent%"))
                .order_by(subscribers.c.id)
            )
        )
        conn.execute(
            insert(enrollments),
            [
                {
                    "subscriber_id": i,
                    "sequence": "tiny",
                    "status": EnrollmentStatus.COMPLETED,
                    "attempts": 0,
                    "created_at": sent,
                }
                for i in ids
            ],
        )
        enrolled = list(
            conn.scalars(
                select(enrollments.c.id)
                .where(enrollments.c.subscriber_id.in_(ids))
                .order_by(enrollments.c.id)
            )
        )
        conn.execute(
            insert(deliveries),
            [
                {
                    "enrollment_id": e,
                    "lesson": "welcome",
                    "lesson_version": "v",
                    "status": DeliveryStatus.SENT,
                    "attempts": 1,
                    # signed, as drip writes them (drip.mail.message_ids)
                    "message_id": new_message_id(
                        svc.settings.secret_key, e, "welcome", "example.org"
                    ),
                    "created_at": sent,
                    "updated_at": sent,
                    "sent_at": sent,
                }
                for e in enrolled
            ],
        )
        return list(conn.scalars(select(deliveries.c.id).order_by(deliveries.c.id)))


def report_on(
    svc: Services, clock: FrozenClock, delivery_id: int, kind: Kind = "complaint"
) -> None:
    """A provider's report of `kind` on that delivery, matched by its Message-ID."""
    with svc.sessions() as session:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None
        record_bounce(
            session,
            Report(
                kind,
                delivery.enrollment.subscriber.email,
                "drip",
                f"test:{delivery_id}",
                message_id=delivery.message_id,
            ),
            clock(),
            Policy.from_settings(svc.settings),
        )
        session.commit()


def test_too_many_complaints_pause_all_sending_until_an_operator_resumes_it(
    app: Flask, svc: Services, web: FlaskClient, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sent = add_sent_deliveries(svc, 700, clock)
    report_on(svc, clock, sent[0])
    with svc.sessions() as session:
        assert sending_paused(session) is None
    report_on(svc, clock, sent[1])  # 2 in 700 = 0.29%: not above 0.3%
    assert json_body(web.get("/healthz"))["sending_paused"] is None
    report_on(svc, clock, sent[2])  # 3 in 700 = 0.43%

    with svc.sessions() as session:
        reason = sending_paused(session)
        assert reason == (
            "complaint rate 0.43% of the last 700 sends is above DRIP_COMPLAINT_PAUSE (0.30%)"
        )
        assert status_line(session) == (
            f"sending: PAUSED for every sequence ({reason}); resume it on the admin dashboard"
        )
    assert json_body(web.get("/healthz"))["sending_paused"] == reason
    scrape = web.get("/metrics", headers={"Authorization": "Bearer scrape"}).text
    assert "drip_sending_paused 1.0" in scrape
    sign_up(svc, "new@example.org")
    svc.dispatcher().run_pass(clock())
    assert smtp_server.messages == []

    add_operator(svc)
    log_in(web)
    dashboard = web.get("/admin/")
    assert reason in dashboard.text
    assert "0.43% (3)" in dashboard.text  # the complaint rate of the last 1,000 sends
    assert web.post("/admin/sending/resume").status_code == 400  # no CSRF token: refused
    assert (
        web.post(
            "/admin/sending/resume", data={"csrf_token": csrf_token(dashboard.text)}
        ).status_code
        == 302
    )

    assert json_body(web.get("/healthz"))["sending_paused"] is None
    svc.dispatcher().run_pass(clock())
    assert [m.subject for m in smtp_server.to("new@example.org")] == ["Welcome, Ada"]
    report_on(svc, clock, sent[3])  # judged on the sends after the resume: too few yet
    with svc.sessions() as session:
        assert sending_paused(session) is None


@pytest.mark.slow
def test_hard_bounces_under_500_sends_never_pause(svc: Services, clock: FrozenClock) -> None:
    sent = add_sent_deliveries(svc, 499, clock)
    for delivery_id in sent[:100]:
        report_on(svc, clock, delivery_id, "hard")
    with svc.sessions() as session:
        assert sending_paused(session) is None


def test_the_webhook_blueprint_needs_no_csrf_token(settings: Settings, clock: FrozenClock) -> None:
    application = create_app(settings, clock=clock)  # not TESTING: CSRF fully on
    answer = application.test_client().post(
        "/webhooks/bounce",
        json={"email": "x@example.org", "type": "soft"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    application.extensions["drip"].engine.dispose()
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DRIP_COMPLAINT_PAUSE", "high", "DRIP_COMPLAINT_PAUSE must be a fraction such as 0.003"),
        ("DRIP_BOUNCE_PAUSE", "50", "DRIP_BOUNCE_PAUSE must be between 0 and 1"),
        ("DRIP_BOUNCE_ADDRESS", "bounces+x@example.org", "DRIP_BOUNCE_ADDRESS must be a plain"),
        ("DRIP_BOUNCE_IMAP_URL", "pop3://host/", "DRIP_BOUNCE_IMAP_URL must be a URL starting"),
        ("DRIP_SNS_TOPIC_ARNS", "drip-topic", "DRIP_SNS_TOPIC_ARNS must be a comma-separated"),
    ],
)
def test_a_malformed_bounce_setting_stops_start_up_naming_it(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(environ={variable: value}, data_dir=tmp_path, secret_key="s")


def test_rates_read_as_a_percentage_or_a_fraction(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"DRIP_COMPLAINT_PAUSE": "0.5%", "DRIP_BOUNCE_PAUSE": "0.02"},
        data_dir=tmp_path,
        secret_key="s",
    )
    assert (settings.complaint_pause, settings.bounce_pause) == (0.005, 0.02)


def test_the_rates_per_day_are_that_days_reports_over_its_sends(
    svc: Services, clock: FrozenClock
) -> None:
    with svc.sessions() as session:
        sends = {clock().date(): 200}
        for n in range(3):
            session.add(
                BounceEvent(
                    key=f"k{n}",
                    received_at=clock(),
                    source="webhook",
                    provider="drip",
                    kind="hard" if n else "complaint",
                    email=f"x{n}@example.org",
                    matched_by="none",
                    outcome="unmatched",
                )
            )
        session.commit()
        (today,) = daily_rates(session, sends, clock().date(), clock().date())
    assert (today.sends, today.hard, today.complaints) == (200, 2, 1)
    assert today.bounce_rate == 0.01 and today.complaint_rate == 0.005


# -- what proves a report ---------------------------------------------------------------------


def test_a_report_that_proves_nothing_is_shown_unverified_on_the_dashboard_and_the_readers_page(
    svc: Services, web: FlaskClient, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(svc)
    svc.dispatcher().run_pass(clock())
    (welcome,) = smtp_server.messages
    with svc.sessions() as session:
        reader = session.scalars(select(Subscriber)).one()
        guessed = f"<drip.{reader.enrollments[0].id}.welcome@drip.test>"
        assert guessed != welcome.message["Message-ID"]
        recorded = record_bounce(
            session,
            Report("complaint", reader.email, "mailbox", "forged:1", "mailbox", message_id=guessed),
            clock(),
            Policy.from_settings(svc.settings),
        )
        session.commit()
        reader_id = reader.id
    assert (recorded.status, recorded.outcome) == ("unverified", "unverified: changed nobody")
    assert statuses(svc) == {"tiny": EnrollmentStatus.ACTIVE}
    assert subscriber(svc, "ada@example.org").suppressed_at is None

    add_operator(svc)
    log_in(web)
    dashboard = web.get("/admin/").text
    assert "Unverified reports: 1" in dashboard
    assert "ada@example.org</a>" in dashboard
    page = web.get(f"/admin/readers/{reader_id}").text
    assert "Unverified spam complaint report: changed nothing" in page
    assert "matched by address only, which does not prove drip sent it" in page


def test_a_signed_webhook_changes_a_reader_only_when_drip_has_mailed_them(
    svc: Services, web: FlaskClient, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    sign_up(svc, "ada@example.org")
    svc.dispatcher().run_pass(clock())  # Ada's welcome
    sign_up(svc, "never@example.org", "tiny-two")  # signed up; nothing sent to them yet

    stranger = hook(web, {"email": "never@example.org", "type": "complaint", "id": "c1"})
    mailed = hook(web, {"email": "ada@example.org", "type": "complaint", "id": "c2"})

    assert json_body(stranger)["results"][0]["status"] == "unverified"
    assert json_body(mailed)["results"][0]["status"] == "applied"
    with svc.sessions() as session:
        found = {e.subscriber.email: e.status for e in session.scalars(select(Enrollment))}
        verified = dict(session.execute(select(BounceEvent.email, BounceEvent.verified)).all())
    assert found == {
        "ada@example.org": EnrollmentStatus.UNSUBSCRIBED,
        "never@example.org": EnrollmentStatus.ACTIVE,
    }
    assert verified == {"ada@example.org": True, "never@example.org": False}
