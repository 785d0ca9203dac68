"""The shared send pace (drip.mail.pace) on a real database, with the clock and the sleep injected:
the sends it lets through never crowd a second, even when a sleeper wakes up late."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import pytest
from sqlalchemy.engine import Engine

from drip.mail.pace import MARGIN, Pace
from drip.store.db import make_engine
from tests.dispatch.test_relay_pace import busiest_second

RATE = 20


class FakeTime:
    """A clock that only the sleep moves; `late` seconds are added to the sleeps listed in
    `oversleep` (by their number), as a loaded host wakes a thread after its time."""

    def __init__(self, start: float = 1_800_000_000.0, oversleep: dict[int, float] | None = None):
        self.start = self.now = start
        self.sleeps = 0
        self.oversleep = oversleep or {}

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds + self.oversleep.get(self.sleeps, 0.0)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    made = make_engine(sqlite_url)
    yield made
    made.dispose()


def sends(pace: Pace, fake: FakeTime, count: int) -> list[float]:
    """The moments `count` sends go out: each right when `wait` lets it."""
    out = []
    for _ in range(count):
        pace.wait()
        out.append(fake.clock())
    return out


def test_sends_are_spaced_a_little_over_one_rate_apart(engine: Engine) -> None:
    fake = FakeTime()
    times = sends(Pace(engine, RATE, clock=fake.clock, sleep=fake.sleep), fake, 100)
    gaps = [b - a for a, b in pairwise(times)]
    assert min(gaps) == pytest.approx(MARGIN / RATE, abs=1e-6)  # unix times: ulp ~2e-7
    assert busiest_second(times) <= RATE


def test_a_send_woken_late_takes_a_later_slot_instead_of_crowding_the_next_second(
    engine: Engine,
) -> None:
    gap = MARGIN / RATE
    # Every third sleep wakes a whole gap late: used as it is, each of those sends would go
    # out on top of the next slot's.
    fake = FakeTime(oversleep={n: gap for n in range(3, 200, 3)})
    pace = Pace(engine, RATE, clock=fake.clock, sleep=fake.sleep)
    times = sends(pace, fake, 60)
    gaps = [b - a for a, b in pairwise(times)]
    assert min(gaps) >= gap / 2  # no two sends closer than half a slot
    assert busiest_second(times) <= RATE


def test_two_workers_sharing_the_row_take_turns_at_the_slots(engine: Engine) -> None:
    fake = FakeTime()
    one = Pace(engine, RATE, clock=fake.clock, sleep=fake.sleep)
    two = Pace(engine, RATE, clock=fake.clock, sleep=fake.sleep)
    times = []
    for _ in range(30):
        for pace in (one, two):
            pace.wait()
            times.append(fake.clock())
    assert len(set(times)) == len(times)  # no slot handed to both
    assert busiest_second(times) <= RATE


def test_each_send_is_let_through_at_its_slot_and_told_which_it_took(engine: Engine) -> None:
    gap = MARGIN / RATE
    fake = FakeTime(oversleep={1: gap})  # the first sleep wakes a whole gap late
    pace = Pace(engine, RATE, clock=fake.clock, sleep=fake.sleep)
    first = pace.take()
    second = pace.take()
    assert first.at == fake.start and not first.waited  # the budget was idle: at once
    assert second.waited
    assert second.at == pytest.approx(first.at + 2 * gap, abs=1e-6)  # the next, not its own
    assert fake.clock() == pytest.approx(second.at, abs=1e-6)  # let through at the slot it took
