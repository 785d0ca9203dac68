"""The admin pages over HTTP: what they show and what their buttons change."""
# ruff: noqa: F811  (fixtures imported from test_admin_access are parameters here)

from __future__ import annotations

import csv
import html
import io
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from drip.app import create_app
from drip.audience import intake
from drip.audience.erasure import erase_subscriber
from drip.audience.leaving import unsubscribe
from drip.audience.subscriptions import Consent, record_event, subscribe
from drip.core.clock import FrozenClock
from drip.dispatch.broadcasts import read_broadcast, schedule
from drip.integrations import hooks
from drip.integrations.api_keys import create_key
from drip.integrations.hooks import add_endpoint
from drip.jobs.worker import import_job
from drip.services import Services, build_services
from drip.store import queries
from drip.store.models import (
    ApiKey,
    Base,
    Broadcast,
    Delivery,
    Enrollment,
    EventKind,
    ImportJob,
    RateLimit,
    SequenceState,
    Subscriber,
    WebhookDelivery,
)
from drip.store.ratelimit import hit
from tests.bulk import add_due_readers
from tests.conftest import CHEAP_HASHER, TESTS, make_settings
from tests.smtp import SmtpServer
from tests.web.test_admin_access import (  # noqa: F401  (fixtures)
    add_operator,
    admin,
    csrf_token,
    log_in,
    logged_in,
)

CONSENT = Consent(source="blog sidebar form", text="Yes, send me the course.", ip="192.0.2.44")


def svc_of(app: Flask) -> Services:
    svc: Services = app.extensions["drip"]
    return svc


def sign_up(
    svc: Services, email: str = "ada@example.org", *, confirmed: bool = True, slug: str = "tiny"
) -> int:
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
            confirmed=confirmed,
        )
        session.commit()
        return enrollment.id


def subscriber_id(svc: Services, email: str) -> int:
    with svc.sessions() as session:
        found = session.scalar(select(Subscriber.id).where(Subscriber.email == email))
        assert found is not None
        return found


def post(web: FlaskClient, url: str, page: str = "/admin/", **data: str) -> TestResponse:
    """Submit an admin form as the browser would: with the CSRF token of the page it is on."""
    token = csrf_token(web.get(page).text)
    return web.post(url, data={"csrf_token": token, **data})


def test_a_delivery_shows_on_the_dashboard_and_the_readers_page(
    logged_in: FlaskClient, app: Flask, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    enrollment = sign_up(svc)
    svc.dispatcher().run_pass(clock())
    dashboard = logged_in.get("/admin/").text
    assert '<div class="value" id="sent-hour">1</div>' in dashboard
    assert "ada@example.org" in dashboard
    assert "Scheduler alive." in dashboard
    assert "<svg" in dashboard and "2026-03-02: 1 sent</title>" in dashboard
    assert '<th scope="row">Signed up</th><td class="num">1</td>' in dashboard  # the funnel
    assert "Hard-bounce and complaint rates per day, last 30 days</title>" in dashboard
    page = logged_in.get(f"/admin/readers/{subscriber_id(svc, 'ada@example.org')}").text
    with svc.sessions() as session:
        stored = session.scalars(select(Delivery.message_id)).one()
    assert stored.startswith(f"<drip.{enrollment}.welcome.")
    assert f"Message-ID {html.escape(stored)}" in page
    assert "blog sidebar form" in page and "IP 192.0.2.44" in page  # the consent record
    assert "Confirmed" in page and "operator vouched for consent" in page
    assert "Lesson “Lesson two” due 2026-03-04 14:00 UTC" in page


def test_the_dashboard_counts_waiting_sign_ups_and_says_why_any_are_on_hold(
    logged_in: FlaskClient, app: Flask, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    with svc.sessions() as session:
        intake.accept(session, "tiny", "ada@example.org", clock(), CONSENT)
        intake.accept(session, "old-course", "bob@example.org", clock(), CONSENT)
        session.commit()
    before = logged_in.get("/admin/").text
    assert '<div class="value" id="signups-waiting">2</div>' in before
    assert 'id="signups-held"' not in before  # not looked at yet: just waiting

    svc.dispatcher().run_pass(clock())

    after = logged_in.get("/admin/").text
    assert '<div class="value" id="signups-waiting">1</div>' in after
    assert "Sign-ups on hold" in after
    assert "1 &middot; sequence &#39;old-course&#39; is not in the sequences folder" in after


def test_the_readers_timeline_shows_downloads_and_unsubscribes(
    logged_in: FlaskClient, app: Flask, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    enrollment = sign_up(svc)
    with svc.sessions() as session:
        found = session.get(Enrollment, enrollment)
        assert found is not None
        record_event(session, found, EventKind.DOWNLOAD, clock(), "magnet.md")
        clock.advance(minutes=5)
        unsubscribe(session, enrollment, clock())
        session.commit()
    page = logged_in.get(f"/admin/readers/{subscriber_id(svc, 'ada@example.org')}").text
    assert "Downloaded the lead magnet" in page and "magnet.md" in page
    assert "Unsubscribed" in page and "nothing more goes out" in page


def test_readers_are_found_by_the_start_of_their_address(
    logged_in: FlaskClient, app: Flask
) -> None:
    sign_up(svc_of(app), "ada@example.org")
    sign_up(svc_of(app), "bob@example.net")
    found = logged_in.get("/admin/readers?q=BOB@ex").text
    assert "bob@example.net" in found and "ada@example.org" not in found
    assert "1 enrollment" in found
    assert "No reader" in logged_in.get("/admin/readers?q=nobody").text
    # a prefix search, through the index: the middle of an address finds nothing
    assert "No reader" in logged_in.get("/admin/readers?q=example.net").text


def test_the_readers_list_pages_to_the_last_reader_and_keeps_its_filter(
    logged_in: FlaskClient, app: Flask, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    add_due_readers(svc.engine, queries.PAGE + 1, clock())  # reader00000 is the oldest
    first = logged_in.get("/admin/readers?status=active").text
    assert f"{queries.PAGE + 1} enrollments" in first and "reader00000@" not in first
    older = re.search(r'href="(/admin/readers\?[^"]*after=[^"]+)"', first)
    assert older and "status=active" in html.unescape(older[1])
    assert "reader00000@" in logged_in.get(html.unescape(older[1])).text
    last = logged_in.get("/admin/readers?status=active&page=last").text
    assert "reader00000@" in last and f"reader{queries.PAGE:05d}@" not in last
    assert "No reader matches" in logged_in.get("/admin/readers?status=paused").text
    for cursor in ("after=" + "9" * 30, "before=²", "after=-1"):  # nonsense is the first page
        answer = logged_in.get(f"/admin/readers?{cursor}")
        assert answer.status_code == 200 and f"reader{queries.PAGE:05d}@" in answer.text


def test_pause_resume_and_restart_an_enrollment(
    logged_in: FlaskClient, app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    enrollment = sign_up(svc)
    svc.dispatcher().run_pass(clock())
    reader = f"/admin/readers/{subscriber_id(svc, 'ada@example.org')}"

    def status() -> str:
        with svc.sessions() as session:
            found = session.get(Enrollment, enrollment)
            assert found is not None
            return found.status

    post(logged_in, f"/admin/enrollments/{enrollment}/pause", reader)
    assert status() == "paused"
    assert "Paused: paused by ops@example.org." in logged_in.get(reader).text
    post(logged_in, f"/admin/enrollments/{enrollment}/resume", reader)
    assert status() == "active"
    svc.dispatcher().run_pass(clock())  # resumed: the next lesson goes now
    assert [m.subject for m in smtp_server.to("ada@example.org")] == ["Welcome, Ada", "Lesson two"]
    post(logged_in, f"/admin/enrollments/{enrollment}/restart", reader)
    svc.dispatcher().run_pass(clock())
    assert [m.subject for m in smtp_server.to("ada@example.org")][-1] == "Welcome, Ada"
    assert "previously sent: welcome, second" in logged_in.get(reader).text


def test_suppressing_a_reader_stops_every_email(
    logged_in: FlaskClient, app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    sign_up(svc)
    reader = f"/admin/readers/{subscriber_id(svc, 'ada@example.org')}"
    post(logged_in, f"{reader}/suppress", reader)
    svc.dispatcher().run_pass(clock())
    assert smtp_server.messages == []
    assert "Suppressed: suppressed by ops@example.org" in logged_in.get(reader).text


def test_export_holds_everything_and_erase_leaves_no_row(
    logged_in: FlaskClient, app: Flask, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    sign_up(svc)
    sign_up(svc, "bob@example.org")
    svc.dispatcher().run_pass(clock())
    with svc.sessions() as session:
        hit(session, "signup:address:ada@example.org", 5, clock())
        intake.accept(session, "tiny", "ada@example.org", clock(), CONSENT)  # not taken in yet
        session.commit()
    ada = subscriber_id(svc, "ada@example.org")
    exported = logged_in.get(f"/admin/readers/{ada}/export")
    assert exported.headers["Content-Disposition"] == f'attachment; filename="reader-{ada}.json"'
    assert exported.headers["Cache-Control"] == "no-store"
    data = json.loads(exported.text)
    assert data["email"] == "ada@example.org"
    assert data["consents"][0]["source"] == "blog sidebar form"
    assert data["enrollments"][0]["deliveries"][0]["message_id"].startswith("<drip.")
    assert {e["kind"] for e in data["events"]} >= {"signed_up", "confirmed"}
    assert [w["source"] for w in data["waiting_sign_ups"]] == ["blog sidebar form"]

    reader = f"/admin/readers/{ada}"
    refused = post(logged_in, f"{reader}/erase", reader, confirm_email="someone else")
    assert refused.location == reader and subscriber_id(svc, "ada@example.org") == ada
    post(logged_in, f"{reader}/erase", reader, confirm_email="ada@example.org")
    with svc.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                assert "ada@example.org" not in repr(row), table.name
                if "subscriber_id" in table.c:
                    assert row.subscriber_id != ada, table.name
    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 1  # bob stays
        assert session.scalar(select(func.count()).select_from(RateLimit)) == 0
    assert logged_in.get(reader).status_code == 404


def test_failed_deliveries_show_the_smtp_answer_and_retry_reaches_the_server(
    logged_in: FlaskClient, app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    sign_up(svc)
    sign_up(svc, "bob@example.org")
    smtp_server.answer("ada@example.org", "550 5.1.1 mailbox unavailable")
    smtp_server.answer("bob@example.org", "451 4.7.1 greylisted")
    svc.dispatcher().run_pass(clock())
    failed = logged_in.get("/admin/deliveries?status=failed").text
    assert "550 5.1.1 mailbox unavailable" in failed and "ada@example.org" in failed
    assert "bob@example.org" not in failed
    assert "451 4.7.1 greylisted" in logged_in.get("/admin/deliveries?q=bob").text
    with svc.sessions() as session:
        delivery = session.scalars(select(Delivery).where(Delivery.status == "failed")).one()
    post(logged_in, f"/admin/deliveries/{delivery.id}/retry", "/admin/deliveries")
    svc.dispatcher().run_pass(clock())
    assert [m.subject for m in smtp_server.to("ada@example.org")] == ["Welcome, Ada"]
    assert "mailbox unavailable" not in logged_in.get("/admin/deliveries?status=failed").text


@pytest.fixture
def one_try_app(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Flask:
    """DRIP_MAX_ATTEMPTS=1: a single transient SMTP failure fails the delivery."""
    application = create_app(
        make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, max_attempts=1),
        clock=clock,
        password_hasher=CHEAP_HASHER,
    )
    application.config["TESTING"] = True
    add_operator(svc_of(application))
    return application


def test_retry_all_failed_leaves_hard_bounces_alone(
    one_try_app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(one_try_app)
    for name, reply in (
        ("ada", "451 4.3.0 try later"),
        ("bob", "452 4.2.2 mailbox full"),
        ("cat", "554 5.7.1 rejected"),
    ):
        sign_up(svc, f"{name}@example.org")
        smtp_server.answer(f"{name}@example.org", reply)
    svc.dispatcher().run_pass(clock())
    web = one_try_app.test_client()
    log_in(web)
    assert "Retry all 3 failed" in web.get("/admin/deliveries").text
    answer = post(web, "/admin/deliveries/retry-failed", "/admin/deliveries")
    assert (
        "2 failed deliveries go out with the next pass; 1 left alone"
        in web.get(answer.location).text
    )
    svc.dispatcher().run_pass(clock())
    assert sorted(r for m in smtp_server.messages for r in m.recipients) == [
        "ada@example.org",
        "bob@example.org",
    ]
    with svc.sessions() as session:
        assert (
            session.scalar(
                select(Subscriber.suppressed_at).where(Subscriber.email == "cat@example.org")
            )
            is not None
        )


@pytest.fixture
def outbox_app(tmp_path: Path, sqlite_url: str, clock: FrozenClock) -> Flask:
    """The embedded default: no DRIP_SMTP_URL, messages go to the outbox folder."""
    application = create_app(
        make_settings(tmp_path, sqlite_url), clock=clock, password_hasher=CHEAP_HASHER
    )
    application.config["TESTING"] = True
    add_operator(svc_of(application))
    return application


def test_the_outbox_shows_each_message_as_the_reader_sees_it(
    outbox_app: Flask, clock: FrozenClock
) -> None:
    svc = svc_of(outbox_app)
    sign_up(svc)
    svc.dispatcher().run_pass(clock())
    web = outbox_app.test_client()
    log_in(web)
    listing = web.get("/admin/outbox").text
    (name,) = [p.name for p in svc.settings.outbox_dir.glob("*.eml")]
    assert name in listing and "Welcome, Ada" in listing
    shown = web.get(f"/admin/outbox/{name}").text
    assert '<iframe class="email" sandbox' in shown
    assert 'srcdoc="&lt;!doctype html&gt;' in shown.lower()
    assert "Hi Ada," in shown
    assert web.get("/admin/outbox/..%2Fsecret_key").status_code == 404
    assert web.get("/admin/outbox/missing.eml").status_code == 404

    reader = f"/admin/readers/{subscriber_id(svc, 'ada@example.org')}"
    erased = post(web, f"{reader}/erase", reader, confirm_email="ada@example.org")
    assert "including 1 message in the outbox" in web.get(erased.location).text
    assert list(svc.settings.outbox_dir.glob("*.eml")) == []


@pytest.fixture
def broken_app(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Flask:
    """The tiny course plus a sequence with a bad delay, for the problems `drip check` finds."""
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences" / "tiny", root / "tiny")
    (root / "broken").mkdir()
    (root / "broken" / "sequence.yaml").write_text('title: "Broken"\npromise: "x"\n')
    (root / "broken" / "01-first.md").write_text("---\nsubject: Hi\ndelay: soon\n---\nBody\n")
    application = create_app(
        make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, sequences_dir=root),
        clock=clock,
        password_hasher=CHEAP_HASHER,
    )
    application.config["TESTING"] = True
    add_operator(svc_of(application))
    return application


def test_sequences_list_lessons_with_delays_and_the_problems_drip_check_finds(
    broken_app: Flask,
) -> None:
    web = broken_app.test_client()
    log_in(web)
    listing = web.get("/admin/sequences").text
    assert "Tiny course" in listing and "has errors" in listing
    assert "broken/01-first.md, line 3</span>: bad delay &#39;soon&#39;" in listing
    assert '<a href="/admin/sequences/broken/lessons/first">Open it</a>' in listing
    assert str(broken_app.extensions["drip"].settings.sequences_dir) not in listing
    tiny = web.get("/admin/sequences/tiny").text
    rows = [line for line in tiny.splitlines() if 'class="mono"' in line and "<td" in line]
    assert [r.split('class="mono">')[1].split("<")[0] for r in rows] == [
        "welcome",
        "second",
        "third",
    ]
    assert "2d" in tiny and "3d" in tiny and "at once" in tiny
    assert "bad delay" in web.get("/admin/sequences/broken").text


def test_a_lesson_editor_previews_the_lesson_with_sample_data(logged_in: FlaskClient) -> None:
    page = logged_in.get("/admin/sequences/tiny/lessons/welcome").text
    assert '<p class="preview-subject" data-preview-subject>Welcome, Alex</p>' in page
    assert "Hi Alex," in page and "reader@example.org" in page
    assert "http://drip.test/sample/preview/magnet" in page  # a link that touches no reader
    assert "/unsubscribe/" not in page
    assert logged_in.get("/admin/sequences/tiny/lessons/nope").status_code == 404


def test_a_paused_sequence_is_skipped_by_the_pass_until_resumed(
    logged_in: FlaskClient, app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    sign_up(svc)
    post(logged_in, "/admin/sequences/tiny/pause", "/admin/sequences/tiny")
    with svc.sessions() as session:
        state = session.get(SequenceState, "tiny")
        assert state is not None and state.paused
    report = svc.dispatcher().run_pass(clock())
    assert report.outcomes == [] and smtp_server.messages == []
    page = logged_in.get(f"/admin/readers/{subscriber_id(svc, 'ada@example.org')}").text
    assert "the sequence is paused by an operator" in page
    post(logged_in, "/admin/sequences/tiny/resume", "/admin/sequences/tiny")
    svc.dispatcher().run_pass(clock())
    assert [m.subject for m in smtp_server.messages] == ["Welcome, Ada"]


CSV = (
    "email,first_name,timezone\n"
    "ada@example.org,Ada,Europe/London\n"
    "not-an-address,Bob,\n"
    "cat@example.org,Cat,Mars/Olympus\n"
    "dan@example.org,Dan,\n"
)


def test_csv_import_keeps_good_rows_and_reports_bad_ones_by_line(
    logged_in: FlaskClient, app: Flask
) -> None:
    token = csrf_token(logged_in.get("/admin/import").text)
    answer = logged_in.post(
        "/admin/import",
        data={
            "csrf_token": token,
            "sequence": "tiny",
            "source": "webinar sheet",
            "file": (io.BytesIO(CSV.encode()), "readers.csv"),
        },
    )
    assert answer.status_code == 302 and "/admin/import/" in answer.headers["Location"]
    job_page = answer.headers["Location"]
    assert "Waiting for the worker" in logged_in.get(job_page).text  # the request queued it
    svc = svc_of(app)
    import_job(svc)  # what the scheduler's import job does every few seconds

    page = logged_in.get(job_page).text
    assert "Imported 2 readers; 2 rows skipped." in page
    assert "line 3: &#39;not-an-address&#39; is not a valid email address" in page
    assert "line 4: unknown time zone" in page
    progress = logged_in.get(f"{job_page}.json").json or {}
    assert {k: progress[k] for k in ("status", "total", "processed", "added", "refused")} == {
        "status": "done",
        "total": 4,
        "processed": 4,
        "added": 2,
        "refused": 2,
    }
    with svc.sessions() as session:
        rows = session.execute(select(Subscriber.email, Enrollment.status).join(Enrollment)).all()
        assert sorted(rows) == [("ada@example.org", "pending"), ("dan@example.org", "pending")]
    data = json.loads(
        logged_in.get(f"/admin/readers/{subscriber_id(svc, 'ada@example.org')}/export").text
    )
    assert data["consents"][0]["source"] == "webinar sheet (import by ops@example.org)"


def test_an_import_without_a_consent_source_is_refused_and_queues_nothing(
    logged_in: FlaskClient, app: Flask
) -> None:
    token = csrf_token(logged_in.get("/admin/import").text)
    page = logged_in.post(
        "/admin/import",
        data={
            "csrf_token": token,
            "sequence": "tiny",
            "source": "",
            "file": (io.BytesIO(CSV.encode()), "readers.csv"),
        },
    ).text
    assert "say where these readers gave their consent" in page
    with svc_of(app).sessions() as session:
        assert session.scalars(select(ImportJob)).all() == []


def test_export_csv_lists_readers_with_their_enrollment_statuses(
    logged_in: FlaskClient, app: Flask, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    sign_up(svc, "ada@example.org")
    sign_up(svc, "bob@example.org", confirmed=False)
    answer = logged_in.get("/admin/export.csv")
    assert answer.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["email"], r["sequence"], r["status"], r["next_lesson"]) for r in rows] == [
        ("ada@example.org", "tiny", "active", "welcome"),
        ("bob@example.org", "tiny", "pending", ""),
    ]


def test_the_csv_export_never_hands_a_spreadsheet_a_formula(
    logged_in: FlaskClient, app: Flask, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    for n, name in enumerate(
        ['=HYPERLINK("http://evil.example","x")', "+SUM(A1:A9)", "-2+3", "@cmd", "Ada"]
    ):
        with svc.sessions() as session:
            subscribe(
                session,
                svc.content.library(),
                "tiny",
                f"r{n}@example.org",
                clock(),
                consent=CONSENT,
                first_name=name,
            )
            session.commit()
    rows = list(csv.DictReader(io.StringIO(logged_in.get("/admin/export.csv").text)))
    assert [r["first_name"] for r in rows] == [
        '\'=HYPERLINK("http://evil.example","x")',
        "'+SUM(A1:A9)",
        "'-2+3",
        "'@cmd",
        "Ada",
    ]


def test_metrics_count_deliveries_enrollments_and_the_last_pass_age(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    app = create_app(
        make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, metrics_token="scrape"),
        clock=clock,
    )
    client, token = app.test_client(), {"Authorization": "Bearer scrape"}
    svc = svc_of(app)
    sign_up(svc)
    sign_up(svc, "bob@example.org")
    smtp_server.answer("bob@example.org", "451 4.3.0 later")
    assert "drip_last_pass_age_seconds NaN" in client.get("/metrics", headers=token).text
    svc.dispatcher().run_pass(clock())
    clock.advance(seconds=42)
    answer = client.get("/metrics", headers=token)
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    text = answer.text
    assert 'drip_deliveries{status="sent"} 1.0' in text
    assert 'drip_deliveries{status="retrying"} 1.0' in text
    assert 'drip_enrollments{sequence="tiny",status="active"} 2.0' in text
    assert "drip_last_pass_age_seconds 42.0" in text
    assert "drip_scheduler_alive 1.0" in text


def test_erasing_a_reader_cascades_on_sqlite_and_postgresql(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    svc = build_services(make_settings(tmp_path, backend_url, smtp_url=smtp_server.url), clock)
    ada = sign_up(svc)
    sign_up(svc, "bob@example.org")
    svc.dispatcher().run_pass(clock())
    with svc.sessions() as session:
        subscriber = session.scalars(
            select(Subscriber).where(Subscriber.email == "ada@example.org")
        ).one()
        erase_subscriber(session, subscriber)
        session.commit()
    with svc.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(table.select()).all()
            assert all("ada@example.org" not in repr(row) for row in rows), table.name
            if "enrollment_id" in table.c:
                assert all(row.enrollment_id != ada for row in rows), table.name
            if table.name in ("enrollments", "deliveries", "consent_records", "subscribers"):
                assert len(rows) == 1, table.name  # bob's
    svc.engine.dispose()


def test_the_integrations_page_shows_broadcasts_keys_and_webhooks_and_acts_on_them(
    logged_in: FlaskClient, app: Flask, clock: FrozenClock, tmp_path: Path
) -> None:
    svc = svc_of(app)
    sign_up(svc)
    library = svc.content.library()
    news = tmp_path / "news.md"
    news.write_text('---\nsubject: "News"\nto: tiny\n---\nA new post.\n')
    with svc.sessions() as session:
        broadcast = schedule(
            session, library, read_broadcast(news, library), clock() + timedelta(days=1), clock()
        )
        create_key(session, "zapier", "write", clock())
        add_endpoint(
            session, "http://10.0.0.9/hooks", ["subscriber.created"], clock(), allow_private=True
        )
        session.commit()
        hooks.collect(session, clock())
        key_id = session.scalars(select(ApiKey.id)).one()
        delivery = session.scalars(select(WebhookDelivery)).one()
        delivery.given_up_at = clock()
        session.commit()
        broadcast_id, delivery_id = broadcast.id, delivery.id

    page = logged_in.get("/admin/integrations").text
    assert "News" in page and "zapier" in page and "http://10.0.0.9/hooks" in page
    assert "subscriber.created" in page
    token = csrf_token(page)
    for action in (
        f"/admin/broadcasts/{broadcast_id}/cancel",
        f"/admin/api-keys/{key_id}/revoke",
        f"/admin/webhooks/{delivery_id}/replay",
    ):
        assert logged_in.post(action, data={"csrf_token": token}).status_code == 302
    with svc.sessions() as session:
        assert session.get(Broadcast, broadcast_id).status == "cancelled"  # type: ignore[union-attr]
        assert session.get(ApiKey, key_id).revoked_at is not None  # type: ignore[union-attr]
        assert session.get(WebhookDelivery, delivery_id).given_up_at is None  # type: ignore[union-attr]


def test_the_sequences_page_says_how_many_readers_and_sign_ups_a_broken_sequence_holds(
    broken_app: Flask, clock: FrozenClock
) -> None:
    svc = svc_of(broken_app)
    root = svc.settings.sequences_dir
    (root / "broken" / "01-first.md").write_text("---\nsubject: Hi\ndelay: 0\n---\nBody\n")
    sign_up(svc, "ada@example.org", slug="broken")  # while it was readable
    (root / "broken" / "01-first.md").write_text("---\nsubject: Hi\ndelay: soon\n---\nBody\n")
    with svc.sessions() as session:
        intake.accept(
            session, "broken", "bo@example.org", clock(), Consent(source="test", text="yes")
        )
        session.commit()
    web = broken_app.test_client()
    log_in(web)

    listing = web.get("/admin/sequences").text

    assert '<span class="badge failed" id="held-broken">1 readers held</span>' in listing
    assert "1 sign-ups waiting" in listing
    assert "Nothing goes out until it is fixed" in listing and "bad delay" in listing


def test_the_sequence_page_says_per_lesson_who_got_it_who_is_due_and_where_readers_drop_off(
    logged_in: FlaskClient, app: Flask, clock: FrozenClock
) -> None:
    svc = svc_of(app)
    sign_up(svc, "ada@example.org")
    bob = sign_up(svc, "bob@example.org")
    clock.advance(hours=1)  # into the morning window
    svc.dispatcher().run_pass(clock())
    with svc.sessions() as session:
        unsubscribe(session, bob, clock())  # after the welcome, before lesson two
        session.commit()

    page = logged_in.get("/admin/sequences/tiny").text

    def row(key: str) -> list[str]:
        start = page.index(f'<tr id="lesson-{key}">')
        cells = re.split(r'<td class="num"[^>]*>', page[start : page.index("</tr>", start)])[2:]
        return [cell.split("</td>")[0].strip() for cell in cells]

    # got it, kept on, left before it, due in a day, due in a week, clicks, replies
    assert row("welcome") == ["2", "–", "0", "0", "0", "–", "0"]  # nobody due for it again
    assert row("second") == ["0", "0%", "1", "0", "1", "–", "0"]  # Bob left; Ada due this week
    chart = page[page.index('id="drop-off-chart"') :]
    assert '<span class="value">2</span>' in chart  # the welcome's bar
    assert '<th scope="row">1. Welcome, friend</th><td class="num">2</td>' in chart
    assert "Clicks are counted with <code>track_links: true</code>" in page


def test_one_broken_lesson_marks_only_itself_and_the_others_keep_subject_delay_and_counts(
    broken_app: Flask,
) -> None:
    svc = svc_of(broken_app)
    sign_up(svc)
    svc.dispatcher().run_pass(svc.clock())  # the welcome goes out at once
    folder = svc.settings.sequences_dir / "tiny"
    (folder / "02-second.md").write_text("---\nsubject: Two: broken\ndelay: 2d\n---\nBody\n")
    web = broken_app.test_client()
    log_in(web)
    page = web.get("/admin/sequences/tiny").text
    rows = {
        row.split('class="mono">')[1].split("<")[0]: row
        for row in page.split('<tr id="lesson-')[1:]
    }
    assert [key for key, row in rows.items() if "has a problem" in row] == ["second"]
    assert "Welcome, " in rows["welcome"] and "at once" in rows["welcome"]
    assert re.search(r'<td class="num" data-label="Got it">1</td>', rows["welcome"])
    assert "Lesson three" in rows["third"] and "3d" in rows["third"]
    assert "02-second.md" in rows["second"]
