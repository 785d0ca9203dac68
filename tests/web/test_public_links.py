"""The pages behind the links in every email: confirm, unsubscribe (page and RFC 8058
one-click), preferences, and a fresh link by email when one has expired."""
# ruff: noqa: F811  (the fixtures imported from test_public_signup are parameters here)

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select

from drip.audience.subscriptions import Consent, subscribe
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import ConsentRecord, Delivery, Enrollment, Event, EventKind
from tests.smtp import SmtpServer
from tests.web.test_public_signup import (  # noqa: F401  (fixtures)
    csrf_token,
    open_confirmation,
    public_app,
    public_settings,
    sign_up,
    snapshot,
    svc,
    web,
)

CONSENT = Consent(source="test", text="Yes, send me the course.")


def reader(
    svc: Services, email: str = "ada@example.org", slug: str = "tiny", confirmed: bool = True
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
            confirmed=confirmed,
        )
        session.commit()
        return enrollment.id


def status(svc: Services, enrollment_id: int) -> str:
    with svc.sessions() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        assert enrollment is not None
        return enrollment.status


def path(url: str) -> str:
    return url.removeprefix("http://drip.test")


def test_confirming_starts_the_course_and_the_welcome_lesson_follows(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enrollment_id = reader(svc, confirmed=False)

    page = open_confirmation(web, path(svc.links.confirm_url(enrollment_id)))
    svc.dispatcher().run_pass(clock())

    assert page.status_code == 200 and "You're in!" in page.text
    assert status(svc, enrollment_id) == "active"
    assert [m.subject for m in smtp_server.to("ada@example.org")] == ["Welcome, Ada"]
    again = open_confirmation(web, path(svc.links.confirm_url(enrollment_id)))
    assert again.status_code == 200  # idempotent
    with svc.sessions() as session:
        kinds = session.scalars(select(Event.kind).where(Event.enrollment_id == enrollment_id))
        assert list(kinds).count(EventKind.CONFIRMED) == 1


def test_a_link_scanner_opening_the_confirmation_link_confirms_nothing(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enrollment_id = reader(svc, confirmed=False)
    before = snapshot(svc.engine)

    page = web.get(path(svc.links.confirm_url(enrollment_id)))
    unchanged = snapshot(svc.engine) == before
    svc.dispatcher().run_pass(clock())

    assert page.status_code == 200 and 'method="post"' in page.text and "Confirm" in page.text
    assert unchanged
    assert status(svc, enrollment_id) == "pending"
    assert [m.subject for m in smtp_server.to("ada@example.org")] == ["Please confirm: Tiny course"]


def test_an_expired_confirmation_link_changes_nothing_and_offers_a_fresh_one(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enrollment_id = reader(svc, confirmed=False)
    url = path(svc.links.confirm_url(enrollment_id))
    svc.dispatcher().run_pass(clock())
    clock.advance(days=8)
    svc.dispatcher().run_pass(clock())  # the sign-up expires unconfirmed
    before = snapshot(svc.engine)

    page = web.get(url)

    assert page.status_code == 410
    assert "This link has expired" in page.text and "Nothing has changed" in page.text
    assert snapshot(svc.engine) == before
    fresh = web.post(
        "/resend",
        data={
            "csrf_token": csrf_token(page.text),
            "purpose": "confirm",
            "email": "ada@example.org",
        },
    )
    assert fresh.status_code == 200 and "a fresh link is on its way" in fresh.text
    svc.dispatcher().run_pass(clock())
    latest = smtp_server.to("ada@example.org")[-1]
    assert latest.subject == "Please confirm: Tiny course"
    link = re.search(r"http://drip\.test(/confirm/\S+)", latest.text())
    assert link and open_confirmation(web, link[1]).status_code == 200
    assert status(svc, enrollment_id) == "active"


def test_a_fresh_link_request_for_an_unknown_address_answers_the_same(
    web: FlaskClient, svc: Services, smtp_server: SmtpServer
) -> None:
    reader(svc, confirmed=False)
    page = web.get("/confirm/forged")
    token = csrf_token(page.text)

    known = web.post(
        "/resend", data={"csrf_token": token, "purpose": "confirm", "email": "ada@example.org"}
    )
    unknown = web.post(
        "/resend", data={"csrf_token": token, "purpose": "confirm", "email": "nobody@example.org"}
    )

    assert (known.status_code, known.data) == (unknown.status_code, unknown.data)


def test_the_unsubscribe_page_changes_nothing_and_offers_two_choices(
    web: FlaskClient, svc: Services
) -> None:
    enrollment_id = reader(svc)
    before = snapshot(svc.engine)

    page = web.get(path(svc.links.unsubscribe_url(enrollment_id)))

    assert page.status_code == 200
    assert 'name="scope" value="course"' in page.text
    assert 'name="scope" value="everything"' in page.text
    assert snapshot(svc.engine) == before


def second_course(svc: Services, first: int) -> int:
    """The same reader in another course (an active enrollment row is all it takes here)."""
    with svc.sessions() as session:
        subscriber_id = session.get(Enrollment, first).subscriber_id  # type: ignore[union-attr]
        second = Enrollment(
            subscriber_id=subscriber_id,
            sequence="another-course",
            status="active",
            created_at=svc.clock(),
            attempts=0,
        )
        session.add(second)
        session.commit()
        return second.id


def test_leaving_one_course_from_the_page_keeps_the_others(web: FlaskClient, svc: Services) -> None:
    tiny = reader(svc)
    other = second_course(svc, tiny)
    url = path(svc.links.unsubscribe_url(tiny))
    page = web.get(url)

    answer = web.post(url, data={"csrf_token": csrf_token(page.text), "scope": "course"})

    assert answer.status_code == 200 and "You're unsubscribed" in answer.text
    assert (status(svc, tiny), status(svc, other)) == ("unsubscribed", "active")


def test_leaving_everything_from_the_page_ends_every_course(
    web: FlaskClient, svc: Services
) -> None:
    first = reader(svc)
    second_id = second_course(svc, first)
    url = path(svc.links.unsubscribe_url(first))
    page = web.get(url)

    answer = web.post(url, data={"csrf_token": csrf_token(page.text), "scope": "everything"})

    assert answer.status_code == 200 and "any more emails" in answer.text
    assert (status(svc, first), status(svc, second_id)) == ("unsubscribed", "unsubscribed")


def test_one_click_unsubscribe_form_encoded_is_200_without_redirect_or_cookie(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enrollment_id = reader(svc)
    svc.dispatcher().run_pass(clock())  # the welcome lesson
    clock.advance(days=2, hours=1)

    answer = web.post(
        path(svc.links.unsubscribe_url(enrollment_id)),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    svc.dispatcher().run_pass(clock())

    assert answer.status_code == 200
    assert "Location" not in answer.headers and "Set-Cookie" not in answer.headers
    assert status(svc, enrollment_id) == "unsubscribed"
    assert [m.subject for m in smtp_server.messages] == ["Welcome, Ada"]  # lesson two never


def test_one_click_unsubscribe_multipart_works_and_cancels_a_pending_retry(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enrollment_id = reader(svc)
    smtp_server.answer("ada@example.org", "451 try later")
    svc.dispatcher().run_pass(clock())  # the welcome lesson fails for now: a retry is queued

    answer = web.post(
        path(svc.links.unsubscribe_url(enrollment_id)),
        data={"List-Unsubscribe": "One-Click"},
        content_type="multipart/form-data",
    )
    clock.advance(hours=1)
    svc.dispatcher().run_pass(clock())

    assert answer.status_code == 200 and "Set-Cookie" not in answer.headers
    assert smtp_server.messages == []
    with svc.sessions() as session:
        assert session.scalars(select(Delivery.status)).one() == "cancelled"


def test_preferences_list_the_courses_and_let_the_reader_leave_and_rejoin(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enrollment_id = reader(svc)
    with svc.sessions() as session:
        subscriber_id = session.get(Enrollment, enrollment_id).subscriber_id  # type: ignore[union-attr]
    url = path(svc.links.preferences_url(subscriber_id))

    page = web.get(url)
    assert page.status_code == 200 and "Tiny course" in page.text and "Subscribed" in page.text
    left = web.post(
        url,
        data={
            "csrf_token": csrf_token(page.text),
            "action": "leave",
            "enrollment": str(enrollment_id),
        },
    )
    assert "You left “Tiny course”" in left.text and "Not subscribed" in left.text
    assert status(svc, enrollment_id) == "unsubscribed"

    back = web.post(
        url,
        data={
            "csrf_token": csrf_token(left.text),
            "action": "rejoin",
            "enrollment": str(enrollment_id),
        },
    )
    assert "Welcome back" in back.text
    assert status(svc, enrollment_id) == "active"  # confirmed before: no new confirmation
    with svc.sessions() as session:
        sources = session.scalars(select(ConsentRecord.source)).all()
        assert sources == ["test", "preferences page"]
    svc.dispatcher().run_pass(clock())
    assert [m.subject for m in smtp_server.messages] == ["Welcome, Ada"]


def test_rejoining_a_course_never_confirmed_asks_for_confirmation(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enrollment_id = reader(svc, confirmed=False)
    with svc.sessions() as session:
        subscriber_id = session.get(Enrollment, enrollment_id).subscriber_id  # type: ignore[union-attr]
    clock.advance(days=8)
    svc.dispatcher().run_pass(clock())  # expires unconfirmed (its confirmation was sent first)
    smtp_before = len(smtp_server.messages)
    url = path(svc.links.preferences_url(subscriber_id))
    page = web.get(url)

    back = web.post(
        url,
        data={
            "csrf_token": csrf_token(page.text),
            "action": "rejoin",
            "enrollment": str(enrollment_id),
        },
    )
    svc.dispatcher().run_pass(clock())

    assert "Please confirm" in back.text
    assert status(svc, enrollment_id) == "pending"
    assert smtp_server.messages[-1].subject == "Please confirm: Tiny course"
    assert len(smtp_server.messages) == smtp_before + 1


def test_the_unconfirmed_window_follows_the_setting(svc: Services, clock: FrozenClock) -> None:
    enrollment_id = reader(svc, confirmed=False)
    clock.advance(days=svc.settings.confirm_days, minutes=-1)
    svc.dispatcher().run_pass(clock())
    assert status(svc, enrollment_id) == "pending"
    clock.advance(minutes=2)
    svc.dispatcher().run_pass(clock())
    assert status(svc, enrollment_id) == "expired"


def test_the_download_link_serves_the_pdf_and_records_the_download(
    web: FlaskClient, svc: Services
) -> None:
    enrollment_id = reader(svc)

    answer = web.get(path(svc.links.magnet_url(enrollment_id)))

    assert answer.status_code == 200
    assert answer.mimetype == "application/pdf"
    assert answer.data.startswith(b"%PDF")
    assert 'filename="tiny.pdf"' in answer.headers["Content-Disposition"]
    with svc.sessions() as session:
        events = session.scalars(select(Event).where(Event.kind == "download")).all()
        assert [(e.enrollment_id, e.detail) for e in events] == [(enrollment_id, "magnet.md")]


def test_an_expired_download_link_leads_to_a_fresh_one_by_email(
    web: FlaskClient, svc: Services, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    enrollment_id = reader(svc)
    old = path(svc.links.magnet_url(enrollment_id))
    clock.advance(days=svc.settings.link_days + 1)
    page = web.get(old)
    assert page.status_code == 410

    answer = web.post(
        "/resend",
        data={"csrf_token": csrf_token(page.text), "purpose": "magnet", "email": "ada@example.org"},
    )

    assert answer.status_code == 200 and "a fresh download link is on its way" in answer.text
    assert smtp_server.to("ada@example.org") == []  # queued by the request ...
    report = svc.dispatcher().run_pass(clock())  # ... and sent by the worker's pass
    assert report.fresh_links.sent == 1
    (message,) = [
        m for m in smtp_server.to("ada@example.org") if m.subject == "Your fresh link: Tiny guide"
    ]
    fresh = re.search(r"http://drip\.test(/magnet/[A-Za-z0-9_.\-]+)", message.text())
    assert fresh
    download = web.get(fresh[1])
    assert download.status_code == 200 and download.data.startswith(b"%PDF")
    with svc.sessions() as session:
        kinds = list(
            session.scalars(
                select(Event.kind).where(Event.enrollment_id == enrollment_id).order_by(Event.id)
            )
        )
        assert kinds[-2:] == ["magnet_link_sent", "download"]
