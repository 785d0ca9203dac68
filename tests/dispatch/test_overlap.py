"""The lessons' lane on PostgreSQL records message N while it builds message N+1 and opens
its envelope, with DATA where the relay offers PIPELINING (drip.dispatch.lane): N+1's final
dot still goes only once N's outcome is committed, and an unsubscribe seen by that commit's
status read still stops N+1 (an envelope opened is reset; with DATA open, the session is
dropped before the final dot). On SQLite the lane is the plain one; the same behaviour
holds. Each runs with and without PIPELINING offered."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from drip.core.clock import FrozenClock
from drip.services import Services
from drip.store.models import Delivery, DeliveryStatus
from tests.dispatch.test_unsubscribe_mid_pass import (
    READERS,
    assert_second_reader_skipped,
    leave,
    setup,
)
from tests.smtp import SmtpServer


def sent_so_far(svc: Services) -> int:
    with svc.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(Delivery.status == DeliveryStatus.SENT)
            ).scalar_one()
        )


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-at-a-time"])
def test_each_message_goes_over_data_only_once_the_previous_outcome_is_committed(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock, pipelining: bool
) -> None:
    smtp_server.handler.pipelining = pipelining
    holder: list[Services] = []
    committed_at_data: list[int] = []

    def look(number: int) -> None:
        committed_at_data.append(sent_so_far(holder[0]))

    smtp_server.handler.data_answer = look
    svc, _ = setup(tmp_path, backend_url, smtp_server, clock)
    holder.append(svc)
    report = svc.dispatcher().run_pass(clock())
    assert [o.status for o in report.outcomes] == ["sent", "sent", "sent"]
    assert committed_at_data == [0, 1, 2]
    assert sent_so_far(svc) == 3
    svc.engine.dispose()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-at-a-time"])
def test_an_unsubscribe_during_a_hand_off_stops_the_next_lesson_built_or_opened_ahead(
    tmp_path: Path, backend_url: str, smtp_server: SmtpServer, clock: FrozenClock, pipelining: bool
) -> None:
    smtp_server.handler.pipelining = pipelining
    holder: list[Services] = []
    ids: list[int] = []

    def during_data(number: int) -> None:
        if number == 1:  # the first reader's message, before the relay answers
            leave(holder[0], ids[1], clock)

    smtp_server.handler.data_answer = during_data
    svc, created = setup(tmp_path, backend_url, smtp_server, clock)
    holder.append(svc)
    ids.extend(created)
    report = svc.dispatcher().run_pass(clock())
    assert [o.status for o in report.outcomes] == ["sent", "skipped", "sent"]
    assert_second_reader_skipped(svc, smtp_server, ids[1])
    assert [m.recipients for m in smtp_server.messages] == [[READERS[0]], [READERS[2]]]
    svc.engine.dispose()
