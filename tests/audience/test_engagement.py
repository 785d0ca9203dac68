"""The engagement sweep as a plain function of a session and `now`: one worker at a time,
and site.yaml's N and M read and checked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from drip.audience.engagement import _take_cursor, sweep
from drip.content.site import load_site
from drip.core.clock import FrozenClock
from drip.services import Services, build_services
from drip.store.models import Engagement, Subscriber
from tests.conftest import CHEAP_HASHER, enroll, make_settings


@pytest.fixture
def svc(tmp_path: Path, postgres_url: str, clock: FrozenClock) -> Iterator[Services]:
    built = build_services(
        make_settings(tmp_path, postgres_url), clock, password_hasher=CHEAP_HASHER
    )
    yield built
    built.engine.dispose()


@pytest.mark.postgres
def test_a_second_worker_skips_the_sweep_while_the_first_holds_it(svc: Services) -> None:
    enroll(svc, "ada@example.org")
    library = svc.content.library()
    asked_long_ago = svc.clock() - timedelta(days=40)
    with Session(svc.engine) as first, Session(svc.engine) as second:
        sweep(first, library, svc.clock())  # made the row
        second.execute(
            update(Subscriber).values(engagement=Engagement.QUIET, repermission_at=asked_long_ago)
        )
        second.commit()
        assert _take_cursor(first, svc.clock()) is not None  # the first worker holds it
        assert sweep(second, library, svc.clock()).gone == 0  # so the second skips
        assert second.scalar(select(Subscriber.engagement)) == Engagement.QUIET
        first.rollback()  # the first is done
        assert sweep(second, library, svc.clock()).gone == 1
        assert second.scalar(select(Subscriber.engagement)) == Engagement.GONE


def test_site_yaml_engagement_is_read_and_a_mistake_is_named_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text("engagement:\n  quiet_after: 4\n  gone_after_days: 14\n")
    site, problems = load_site(tmp_path)
    assert problems == []
    assert (site.engagement.quiet_after, site.engagement.gone_after_days) == (4, 14)
    (tmp_path / "site.yaml").write_text("engagement:\n  quiet_after: none\n  soon: 3\n")
    site, problems = load_site(tmp_path)
    assert site.engagement.quiet_after == 6  # the default stands in
    words = [p.message for p in problems]
    assert "engagement.quiet_after is a whole number from 1 to 100" in words
    assert any("engagement: unknown key 'soon'" in w for w in words)
    assert any(p.line == 2 for p in problems)
