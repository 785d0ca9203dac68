"""The sign-up's write on the driver's cursor (drip.audience.signup_queue) stores what the
SQLAlchemy path (intake.accept, ratelimit.hits) stores: the same queued row, the same
counter rows, down to the text SQLite keeps for a time, so the two kinds of writer can share
a window's counter."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from drip.audience import intake
from drip.audience.signup import Peer, SignUp, SignUpRefused, limits
from drip.audience.signup_queue import accept_sign_up
from drip.audience.subscriptions import Consent
from drip.core.clock import FrozenClock
from drip.services import Services, build_services
from drip.store.ratelimit import hits
from tests.conftest import make_settings

PEER = Peer(ip="198.51.100.4", user_agent="test browser", source="sign-up page /subscribe/tiny")


@pytest.fixture
def svc(tmp_path: Path, backend_url: str, clock: FrozenClock) -> Iterator[Services]:
    services = build_services(
        make_settings(
            tmp_path,
            backend_url,
            signup_limit_ip=3,
            signup_limit_address=1,
            check_email_domain=False,
        ),
        clock,
    )
    yield services
    services.engine.dispose()


def stored(svc: Services, table: str, order: str) -> list[tuple[Any, ...]]:
    """The rows as the database keeps them (on SQLite a time is text), ids left out."""
    with svc.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}").all()
    return [tuple(row[1:]) if table == "signup_requests" else tuple(row) for row in rows]


def sign_up(svc: Services, email: str, **fields: Any) -> None:
    sequence = svc.content.library().for_sign_up("tiny")
    assert sequence is not None
    form = SignUp(email=email, first_name="Ada", timezone="Europe/Paris", consent=True, **fields)
    accept_sign_up(svc.engine, sequence, form, PEER, svc.clock(), svc.settings)


def test_the_driver_path_stores_what_sqlalchemy_stores(svc: Services, clock: FrozenClock) -> None:
    clock.set(datetime(2026, 3, 2, 13, 0, 0, tzinfo=UTC))  # microseconds 0, as a window's start
    sign_up(svc, "ada@example.org", tags=("blog",))
    fast = stored(svc, "signup_requests", "id"), stored(svc, "rate_limits", '"key"')
    sequence = svc.content.library().for_sign_up("tiny")
    assert sequence is not None
    with svc.sessions() as session:
        session.execute(text("DELETE FROM signup_requests"))
        session.execute(text("DELETE FROM rate_limits"))
        hits(session, limits("signup", PEER.ip, "ada@example.org", svc.settings), clock())
        consent = Consent(PEER.source, sequence.consent, PEER.ip, PEER.user_agent)
        intake.accept(
            session,
            "tiny",
            "ada@example.org",
            clock(),
            consent,
            first_name="Ada",
            timezone="Europe/Paris",
            tags=("blog",),
        )
        session.commit()

    assert (stored(svc, "signup_requests", "id"), stored(svc, "rate_limits", '"key"')) == fast
    assert len(fast[0]) == 1 and len(fast[1]) == 2


def test_counts_go_on_in_a_window_the_orm_opened_and_a_refused_attempt_counts_too(
    svc: Services, clock: FrozenClock
) -> None:
    with svc.sessions() as session:  # the window opened by the other kind of writer
        hits(session, limits("signup", PEER.ip, None, svc.settings), clock())
        session.commit()
    with pytest.raises(SignUpRefused, match="tick the box"):
        sequence = svc.content.library().for_sign_up("tiny")
        assert sequence is not None
        accept_sign_up(
            svc.engine, sequence, SignUp(email="ada@example.org"), PEER, clock(), svc.settings
        )
    sign_up(svc, "bob@example.org")
    with pytest.raises(SignUpRefused, match="from your network") as refused:
        sign_up(svc, "cy@example.org")  # the fourth from this IP, the limit is 3

    assert refused.value.throttled
    counts = {row[0]: row[2] for row in stored(svc, "rate_limits", '"key"')}
    assert counts[f"signup:ip:{PEER.ip}"] == 4
    assert [row[2] for row in stored(svc, "signup_requests", "id")] == ["bob@example.org"]
