"""`drip schedule` at a reader's pace: slower, away until a date, and a real reader's own."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from drip.audience import pace
from drip.audience.subscriptions import Consent
from drip.cli import cli
from drip.cli.common import Runtime
from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import Enrollment
from tests.cli.test_content_tools import drip
from tests.conftest import enroll


def test_schedule_slower_counts_each_delay_twice(tmp_path: Path) -> None:
    result = drip(
        tmp_path, "schedule", "tiny", "--signup", "2026-03-02T13:00:00Z",
        "--timezone", "Asia/Kolkata", "--slower",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[2] == "day   5  Sat 2026-03-07 09:00 IST  02-second  Lesson two"
    assert lines[3] == "day  11  Fri 2026-03-13 09:00 IST  03-third  Lesson three"


def test_schedule_away_until_holds_every_lesson_to_the_morning_after(tmp_path: Path) -> None:
    result = drip(
        tmp_path, "schedule", "tiny", "--signup", "2026-03-02T13:00:00Z",
        "--timezone", "Asia/Kolkata", "--away-until", "2026-03-20",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith("day  19  Sat 2026-03-21 09:00 IST  01-welcome")
    assert lines[2] == "day  21  Mon 2026-03-23 09:00 IST  02-second  Lesson two"
    bad = drip(
        tmp_path, "schedule", "tiny", "--signup", "2026-03-02T13:00:00Z", "--away-until", "soon"
    )
    assert bad.exit_code == 2 and "'soon' is not a date such as 2026-03-20" in bad.output


def test_schedule_for_a_reader_shows_their_pace_and_dates(
    services: Services, clock: FrozenClock
) -> None:
    enroll(services, timezone="Asia/Kolkata")
    services.dispatcher().run_pass(clock())  # the welcome, Monday 18:30 in Kolkata
    with services.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        sequence = services.content.library().sequences["tiny"]
        pace.away(session, sequence, enrollment, clock(), clock().date().replace(day=20), HOW)
        session.commit()
    result = CliRunner().invoke(
        cli, ["schedule", "tiny", "--reader", "ada@example.org"], obj=Runtime(services)
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "tiny: ada@example.org in Asia/Kolkata, active",
        "pace: away by the reader since 2026-03-02, until Sat 2026-03-21 09:00 IST",
        "Sat 2026-03-21 09:00 IST  02-second  Lesson two",
        "Tue 2026-03-24 09:00 IST  03-third  Lesson three",
    ]


HOW = Consent("command line test", "")
