"""What recording hard bounces costs: a pass's read of the bounce mailbox against one
event a post, in one run.

After a bad import or an old list's first broadcast, the bounce mailbox fills with hard
bounces, and every pass reads it before it sends (drip.deliverability.mailbox). Each report
is matched (its signed VERP address), recorded, its reader suppressed, and committed before
its message moves. The guardrail's rates (drip.deliverability.sending_pause) were asked
after each report; a pass now asks them once, after its read (at most `PER_PASS` messages).

N readers are each sent a lesson (a dispatch pass to bench/sink.py), then in turns, ROUNDS
times, on readers not bounced yet:
1. each: one hard bounce at a time, the way a provider that posts one event a request is
   recorded (`record_all` of one report, the guardrail asked after it, a commit);
2. read: the same number, the bounce mailbox's way (each report recorded and committed, the
   guardrail asked once at the end), without the IMAP session (tests/deliverability
   covers that against Dovecot).
The guardrail's limits are set so that it never trips: each time it is asked, it reads the
rates of the last 1,000 sends. It ends with `read_vs_each RATIO` (the medians' time one at a
time over the read's: above 1, the read is cheaper).

    .venv/bin/python bench/bounces.py                                  # SQLite, temporary
    .venv/bin/python bench/bounces.py --database-url postgresql+psycopg://postgres@/bench

With --database-url, the drip tables of that database are EMPTIED first.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

from common import bench_settings, reset, say
from dispatch import NOW, SLUG, Sink, load
from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.core.config import Settings
from drip.deliverability.bounces import Policy, Report, ask_guardrail, record_all
from drip.deliverability.verp import return_path
from drip.services import build_services
from drip.store.models import Delivery, Enrollment, Subscriber

ROUNDS = 3
BOUNCES = "bounces@drip.test"


def reports(session: Session, settings: Settings, limit: int) -> list[Report]:
    """A hard bounce for each of `limit` sent lessons, by its VERP address, as a DSN says."""
    rows = session.execute(
        select(Delivery.id, Delivery.enrollment_id, Subscriber.email)
        .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
        .where(Delivery.sent_at.is_not(None))
        .order_by(Delivery.id)
        .limit(limit)
    ).all()
    return [
        Report(
            "hard",
            email,
            "mailbox",
            f"bench:{delivery}",
            source="mailbox",
            return_path=return_path(settings, BOUNCES, delivery, enrollment),
            diagnostic="smtp; 550 5.1.1 user unknown",
        )
        for delivery, enrollment, email in rows
    ]


def each(session: Session, group: list[Report], policy: Policy) -> None:
    for report in group:
        record_all(session, [report], NOW, policy)
        session.commit()


def read(session: Session, group: list[Report], policy: Policy) -> None:
    recorded = []
    for report in group:
        recorded += record_all(session, [report], NOW, policy, guard=False)
        session.commit()
    ask_guardrail(session, recorded, NOW, policy)
    session.commit()


Way = Callable[[Session, list[Report], Policy], None]


def timed(session: Session, way: Way, group: list[Report], policy: Policy) -> float:
    start = time.perf_counter()
    way(session, group, policy)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a database of its own (emptied first)")
    parser.add_argument("--reports", type=int, default=300, help="hard bounces per way a round")
    args = parser.parse_args()
    per_way = args.reports
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
        sink = Sink()
        settings = bench_settings(
            tmp,
            url,
            smtp_url=sink.url,
            allow_unsafe_sending=True,
            bounce_address=BOUNCES,
            bounce_pause=1.0,  # asked, never tripped: a trickle under the limit
            complaint_pause=1.0,
            postal_address="1 Bench Road",
        )
        svc = build_services(settings, clock=lambda: NOW)
        try:
            sequence = svc.content.library().sequences[SLUG]
            readers = 2 * ROUNDS * per_way
            reset(svc.engine)
            load(svc.engine, 1, readers, readers, sequence)
            say(f"sending a lesson to {readers:,} readers ...")
            svc.dispatcher().run_pass(NOW)
            policy = Policy.from_settings(settings)
            with Session(svc.engine) as session:
                found = reports(session, settings, readers)
                times: dict[str, list[float]] = {"each": [], "read": []}
                for n in range(ROUNDS):
                    for name, way in (("each", each), ("read", read)):
                        first = (2 * n + (name == "read")) * per_way
                        group = found[first : first + per_way]
                        took = timed(session, way, group, policy)
                        say(f"round {n + 1}, {name}: {took:.2f} s for {len(group):,} reports")
                        times[name].append(took)
        finally:
            svc.engine.dispose()
            sink.stop()
    one, batch = (statistics.median(times[k]) for k in ("each", "read"))
    print(f"backend {svc.engine.dialect.name}; {per_way:,} hard bounces a way, median of {ROUNDS}")
    print(f"each  {one / per_way * 1000:.2f} ms a report (the guardrail asked after each)")
    print(f"read  {batch / per_way * 1000:.2f} ms a report (asked once)")
    print(f"read_vs_each {one / batch:.2f}")


if __name__ == "__main__":
    main()
