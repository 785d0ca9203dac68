"""drip.audience.pace on its own: what counts as paused at an instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drip.audience.pace import pace_of, paused_at
from drip.store.models import Enrollment

NOW = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)


def test_a_pause_until_the_reader_comes_back_holds_until_something_gives_a_due_time() -> None:
    held = Enrollment(paused_since=NOW, resumes_at=None, due_at=None, slower=False)
    assert paused_at(held, NOW + timedelta(days=400))
    assert pace_of(held, NOW).held
    resumed_by_an_operator = Enrollment(paused_since=NOW, resumes_at=None, due_at=NOW, slower=False)
    assert not paused_at(resumed_by_an_operator, NOW)


def test_a_dated_pause_ends_on_its_date() -> None:
    back = NOW + timedelta(days=14)
    away = Enrollment(paused_since=NOW, resumes_at=back, due_at=back, slower=True)
    assert paused_at(away, back - timedelta(seconds=1))
    assert pace_of(away, NOW).resumes_at == back and pace_of(away, NOW).slower
    assert not paused_at(away, back)
    assert pace_of(away, back).resumes_at is None


def test_a_reader_who_never_paused_is_not_paused() -> None:
    steady = Enrollment(paused_since=None, resumes_at=None, due_at=None, slower=False)
    assert not paused_at(steady, NOW)
    assert pace_of(steady, NOW) == pace_of(steady, NOW + timedelta(days=1))
