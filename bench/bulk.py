"""How long the admin's bulk actions take on 100,000 enrollments (bench/admin.py's load:
a reader each, five deliveries each, most completed or unsubscribed, 15% active).

Through Flask's test client, as the operator's browser would: the confirmation page (its
count), then the confirmed run and every progress page after it (each request works for
drip.audience.bulk.BUDGET seconds). For each action it prints the rows changed, the requests the run
took, the seconds in all and the rows per second. The baseline, measured in the same run on
the same rows: one bare SQL statement doing the same change with no audit, timeline, tally
or batching (then undone). It prints `tag_vs_bare_insert` and `pause_vs_bare_update`, drip's
time over the bare statement's (the price of the batches, the timeline and the checks).

    .venv/bin/python bench/bulk.py                        # PostgreSQL on 127.0.0.1 (own database)
    .venv/bin/python bench/bulk.py --database-url sqlite:////tmp/bulk-bench.sqlite3
    .venv/bin/python bench/bulk.py --size 20000           # a quick look
"""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from admin import NOW, admin_bench, load
from common import say
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)"')


def act(web: FlaskClient, form: dict[str, str]) -> tuple[int, int, int, float, float]:
    """(the confirmation's count, rows changed, run requests, seconds to confirm, seconds
    to run) for one action."""
    token = web.get("/admin/readers").text.split('name="csrf_token" value="', 1)[1].split('"')[0]
    began = time.perf_counter()
    page = web.post("/admin/readers/bulk", data={"csrf_token": token, **form})
    counted = time.perf_counter() - began
    match = re.search(r'name="expected" value="(\d+)"', page.text)
    expected = int(match[1]) if match else 0
    fields: dict[str, Any] = {"csrf_token": token, **form, "expected": str(expected)}
    if form["action"] == "erase":
        fields["typed"] = str(expected)
    requests = 0
    began = time.perf_counter()
    answer = web.post("/admin/readers/bulk/run", data=fields)
    requests += 1
    while answer.status_code == 200:
        answer = web.post("/admin/readers/bulk/run", data=dict(HIDDEN.findall(answer.text)))
        requests += 1
    ran = time.perf_counter() - began
    if answer.status_code != 302:
        raise SystemExit(f"{form}: HTTP {answer.status_code}")
    shown = web.get(answer.headers["Location"]).text
    flashed = re.search(r'role="status">([^<]*)<', shown)
    message = flashed[1] if flashed else ""
    number = re.search(r"([\d,]+) (?:readers?|enrollments?)\b", message)
    changed = int(number[1].replace(",", "")) if number else 0
    say(f"    {message}")
    return expected, changed, requests, counted, ran


def bare(engine: Engine, statement: str) -> float:
    """Seconds the bare statement takes (the tables' triggers included), rolled back after."""
    with engine.connect() as conn:
        began = time.perf_counter()
        conn.execute(text(statement), {"now": NOW})
        took = time.perf_counter() - began
        conn.rollback()
    return took


BARE = {
    "tag": "INSERT INTO subscriber_tags (subscriber_id, tag, created_at, source) "
    "SELECT id, 'cohort-2026', :now, 'bench' FROM subscribers",
    "pause": "UPDATE enrollments SET status = 'paused' WHERE status = 'active'",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a database of its own (emptied first)")
    parser.add_argument("--size", type=int, default=100_000, help="enrollments (%(default)s)")
    args = parser.parse_args()
    with admin_bench(args.database_url, smtp_url="smtp://127.0.0.1:1") as bench:
        engine, svc, web = bench.engine, bench.svc, bench.web
        say(f"loading {args.size:,} enrollments")
        load(engine, 1, args.size, svc.content.library())
        baseline = {action: bare(engine, statement) for action, statement in BARE.items()}
        took: dict[str, float] = {}
        say(
            f"{'action':42} {'count':>8} {'changed':>8} {'requests':>8} {'confirm s':>9} "
            f"{'run s':>7} {'rows/s':>8}"
        )
        for label, form in [
            ("tag everyone", {"action": "tag", "bulk_tag": "cohort-2026"}),
            ("pause the active", {"action": "pause", "status": "active"}),
            ("resume the paused", {"action": "resume", "status": "paused"}),
            (
                "move active procrastination -> networking",
                {
                    "action": "move",
                    "target": "networking-tips",
                    "sequence": "procrastination",
                    "status": "active",
                },
            ),
            ("untag everyone", {"action": "untag", "bulk_tag": "cohort-2026"}),
            ("erase everyone", {"action": "erase"}),
        ]:
            expected, changed, requests, counted, ran = act(web, form)
            took.setdefault(form["action"], ran)
            say(
                f"{label:42} {expected:8,} {changed:8,} {requests:8} {counted:9.2f} "
                f"{ran:7.1f} {changed / ran if ran else 0:8,.0f}"
            )
            if expected != changed:
                raise SystemExit(f"{label}: confirmed {expected}, changed {changed}")
        for action, seconds in baseline.items():
            say(f"bare {action} statement: {seconds:.2f} s")
            print(
                f"{action}_vs_bare_{'insert' if action == 'tag' else 'update'} "
                f"{took[action] / seconds:.1f}"
            )


if __name__ == "__main__":
    main()
