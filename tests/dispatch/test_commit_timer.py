"""The overlapped lane (drip.dispatch.lane) is chosen by how long recording a hand-off has
taken lately: in turn while commits are quick, overlapped once they are slow, always with a
threshold of 0 (DRIP_OVERLAP_COMMIT_MS). The timer's clock is injected: no test waits."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from drip.core.clock import FrozenClock
from drip.dispatch.lane import CommitTimer
from drip.services import build_services
from tests.conftest import make_settings
from tests.smtp import SmtpServer


class Ticks:
    """A clock that moves by `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_no_thread_before_a_record_was_timed_unless_always() -> None:
    assert not CommitTimer(1.0).worth_a_thread()
    assert CommitTimer(0).worth_a_thread()


def test_quick_commits_stay_in_turn_and_slow_ones_earn_the_thread() -> None:
    ticks = Ticks(0.0002)  # each record 0.2 ms
    timer = CommitTimer(1.0, clock=ticks)
    assert [timer.timed(functools.partial(int, n)) for n in range(20)] == list(range(20))
    assert timer.mean is not None and abs(timer.mean - 0.0002) < 1e-9
    assert not timer.worth_a_thread()
    ticks.step = 0.004  # the disk got slow: 4 ms a record
    for _ in range(20):
        timer.timed(lambda: None)
    assert timer.worth_a_thread()
    ticks.step = 0.0001
    for _ in range(60):
        timer.timed(lambda: None)
    assert not timer.worth_a_thread()  # quick again: back in turn


def test_a_record_that_fails_is_timed_too() -> None:
    timer = CommitTimer(1.0, clock=Ticks(0.003))

    def broken() -> None:
        raise ConnectionError("the database went away")

    with pytest.raises(ConnectionError):
        timer.timed(broken)
    assert timer.worth_a_thread()


def test_the_pass_shares_one_timer_between_lessons_and_the_other_kinds(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    settings = make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url, overlap_commit_ms=2.5)
    dispatcher = build_services(settings, clock).dispatcher()
    assert dispatcher.recorder.commits is dispatcher.sender.commits
    assert dispatcher.recorder.commits.threshold == 0.0025
