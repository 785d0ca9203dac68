"""Twenty clicks on one confirmation button at once: the course starts once, so the
timeline has one `confirmed` event, one `subscriber.confirmed` webhook is queued and one
welcome goes out."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import requests
from sqlalchemy import func, select

from drip.core.clock import FrozenClock
from drip.integrations import hooks
from drip.store.models import Delivery, Event, EventKind, WebhookDelivery
from tests.conftest import enroll, serving
from tests.smtp import SmtpServer

CLICKS = 20


def _csrf(web: requests.Session, url: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', web.get(url, timeout=10).text)
    assert match, "the confirmation page has a form"
    return match[1]


def test_twenty_concurrent_confirmations_record_one_event_one_webhook_and_one_welcome(
    tmp_path: Path, backend_url: str, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    with serving(tmp_path, backend_url, clock, smtp_url=smtp_server.url) as server:
        svc = server.services
        with svc.sessions() as session:
            hooks.add_endpoint(
                session,
                "http://10.0.0.9/h",  # only queued here, never delivered
                ["subscriber.confirmed"],
                clock(),
                allow_private=True,
            )
            session.commit()
        enrollment_id = enroll(svc, confirmed=False)
        url = svc.links.confirm_url(enrollment_id)
        webs = [requests.Session() for _ in range(CLICKS)]
        tokens = [_csrf(web, url) for web in webs]
        barrier = threading.Barrier(CLICKS)
        codes: list[int] = []

        def click(web: requests.Session, token: str) -> None:
            barrier.wait()
            codes.append(web.post(url, data={"csrf_token": token}, timeout=60).status_code)

        threads = [
            threading.Thread(target=click, args=pair) for pair in zip(webs, tokens, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)

        assert codes == [200] * CLICKS
        with svc.sessions() as session:
            assert hooks.collect(session, clock()) == 1
        clock.advance(hours=2)  # inside the course's sending window
        svc.dispatcher().run_pass(clock())
        with svc.sessions() as session:
            kinds = session.scalars(
                select(Event.kind).where(Event.enrollment_id == enrollment_id)
            ).all()
            assert kinds.count(EventKind.CONFIRMED) == 1
            queued = session.scalar(select(func.count()).select_from(WebhookDelivery))
            assert queued == 1
            sent = session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.enrollment_id == enrollment_id)
            )
            assert sent == 1
        assert len(smtp_server.messages) == 1  # the welcome, once
