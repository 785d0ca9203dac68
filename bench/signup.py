"""How fast drip takes sign-ups under gunicorn, against a bare Flask endpoint, in one run.

1. drip: `gunicorn wsgi:app` on a temporary SQLite database, with the tiny test sequence
   (`--sequences sequences --slug interview-questions`: this repository's four courses).
   Each client opens a session the way a browser does (GET /subscribe/SLUG once, for the
   cookie and the CSRF token: not counted) and then posts the page's form with a new address
   each time: CSRF check, address syntax check, rate limits per IP and per address (one
   upsert; the limits are set high so none refuses), the queued sign-up row (drip.audience.intake),
   one commit (both statements on the driver's cursor: drip.audience.signup_queue), and the 303
   to the thank-you page (not followed).
2. bare: a tiny Flask app in this file, under gunicorn with the same worker count, whose
   endpoint checks the address with email-validator and inserts one row into a table of the
   same SQLite database.

After the rounds, the worker's side is timed too: `take_in` turns every queued sign-up into
a subscriber, enrollment, consent record and event, as the first step of a dispatch pass
does. Its rate is printed (not part of the ratio: it runs in the worker, in batches).

Both are driven by the same N client threads (http.client, loopback only) for the same
time, in alternating rounds so that a change in the machine's load falls on both. It prints
each rate and ends with `signup_vs_bare RATIO` (issue 20's target: at least 0.8; where the time
goes is in bench/PROFILE.md, "Sign-up").

    .venv/bin/python bench/signup.py                  # 2 workers, 8 clients, 12 s each
    .venv/bin/python bench/signup.py --workers 4 --clients 16 --seconds 20
    .venv/bin/python bench/signup.py --sequences sequences --slug interview-questions

The client runs on the same machine; its CPU use is printed, so a client that is itself the
bottleneck shows.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
MAX_REQUESTS = 200_000  # per run, whatever the duration
BARE_TABLE = "bare_signups"


def bare_app() -> object:
    """The baseline: validate an address, insert a row, answer. Gunicorn calls this."""
    from email_validator import EmailNotValidError, validate_email
    from flask import Flask, request
    from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert

    from drip.store.db import make_engine

    engine = make_engine(os.environ["BENCH_DATABASE_URL"])
    table = Table(
        BARE_TABLE,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("email", String(320)),
        Column("created_at", DateTime),
    )
    app = Flask("bare")

    @app.post("/signup")
    def signup() -> tuple[str, int]:
        try:
            address = validate_email(
                request.form.get("email", ""), check_deliverability=False
            ).normalized
        except EmailNotValidError:
            return "bad address", 400
        with engine.begin() as conn:
            conn.execute(insert(table).values(email=address, created_at=datetime.now(UTC)))
        return "ok", 201

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    def __init__(self, app: str, workers: int, env: dict[str, str], chdir: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{self.port}",
                "--chdir",
                str(chdir),
                "--log-level",
                "warning",
                app,
            ],
            env=env,
            cwd=ROOT,
        )

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.process.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", path)
                if conn.getresponse().status < 500:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("gunicorn did not answer within 30 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Result:
    ok: int
    failed: int
    seconds: float
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.ok / self.seconds


Client = Callable[[int, threading.Event, list[int]], None]


def drive(clients: int, seconds: float, client: Client) -> Result:
    """Run `clients` threads until `seconds` pass or MAX_REQUESTS are made."""
    stop = threading.Event()
    counts = [[0, 0] for _ in range(clients)]
    threads = [threading.Thread(target=client, args=(n, stop, counts[n])) for n in range(clients)]
    cpu = time.process_time()
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    while time.perf_counter() - start < seconds:
        time.sleep(0.05)
        if sum(c[0] + c[1] for c in counts) >= MAX_REQUESTS:
            break
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return Result(
        sum(c[0] for c in counts), sum(c[1] for c in counts), elapsed, time.process_time() - cpu
    )


def post(
    conn: http.client.HTTPConnection, path: str, body: dict[str, str], headers: dict[str, str]
) -> tuple[int, http.client.HTTPResponse]:
    conn.request(
        "POST",
        path,
        urlencode(body),
        {"Content-Type": "application/x-www-form-urlencoded", **headers},
    )
    response = conn.getresponse()
    response.read()
    return response.status, response


def drip_client(port: int, tag: str, slug: str) -> Client:
    def run(n: int, stop: threading.Event, count: list[int]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", f"/subscribe/{slug}")  # a browser's visit: cookie + CSRF token
        page = conn.getresponse()
        html = page.read().decode()
        cookie = (page.getheader("Set-Cookie") or "").split(";", 1)[0]
        match = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert match and cookie, "the sign-up page gave no CSRF token or cookie"
        form = {
            "csrf_token": match[1],
            "first_name": "Bench",
            "consent": "yes",
            "timezone": "Europe/Paris",
        }
        i = 0
        while not stop.is_set():
            status, _ = post(
                conn,
                f"/subscribe/{slug}",
                {**form, "email": f"{tag}-{n}-{i}@example.org"},
                {"Cookie": cookie},
            )
            count[0 if status == 303 else 1] += 1
            i += 1

    return run


def bare_client(port: int, tag: str) -> Client:
    def run(n: int, stop: threading.Event, count: list[int]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = 0
        while not stop.is_set():
            status, _ = post(conn, "/signup", {"email": f"{tag}-{n}-{i}@example.org"}, {})
            count[0 if status == 201 else 1] += 1
            i += 1

    return run


def take_in_all(env: dict[str, str]) -> tuple[float, int]:
    """The worker's share: take in everything the sign-up rounds queued, timed."""
    from drip.audience.intake import take_in
    from drip.core.config import load_settings
    from drip.services import build_services

    svc = build_services(load_settings(environ=env))
    start = time.perf_counter()
    with svc.sessions() as session:
        report = take_in(session, svc.content.library())
    elapsed = time.perf_counter() - start
    svc.engine.dispose()
    return elapsed, report.taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, both apps")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument(
        "--seconds", type=float, default=12.0, help="time spent driving each app, split into rounds"
    )
    parser.add_argument(
        "--rounds", type=int, default=4, help="alternating rounds (drip, bare, drip, bare ...)"
    )
    parser.add_argument(
        "--sequences",
        type=Path,
        default=ROOT / "tests" / "sequences",
        help="drip's sequences folder (the tests' one course by default)",
    )
    parser.add_argument("--slug", default="tiny", help="the course signed up to")
    args = parser.parse_args()

    from sqlalchemy import text

    from drip.store.db import make_engine, migrate

    with tempfile.TemporaryDirectory(prefix="drip-bench-") as folder:
        data = Path(folder)
        url = f"sqlite:///{data / 'drip.sqlite3'}"
        engine = make_engine(url)
        migrate(engine)
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"CREATE TABLE {BARE_TABLE} (id INTEGER PRIMARY KEY, "
                    "email VARCHAR(320), created_at DATETIME)"
                )
            )
        env = {
            **os.environ,
            "DRIP_DATA_DIR": str(data),
            "DRIP_DATABASE_URL": url,
            "DRIP_SEQUENCES_DIR": str(args.sequences.resolve()),
            "DRIP_SECRET_KEY": "bench-secret",
            "DRIP_CHECK_EMAIL_DOMAIN": "0",
            "DRIP_SIGNUP_LIMIT_IP": "1000000000",
            "DRIP_SIGNUP_LIMIT_ADDRESS": "1000",
            "BENCH_DATABASE_URL": url,
            "PYTHONPATH": str(ROOT),
        }

        servers = {
            "signup": Gunicorn("wsgi:app", args.workers, env, ROOT),
            "bare": Gunicorn("signup:bare_app()", args.workers, env, ROOT / "bench"),
        }
        clients: dict[str, Callable[[int, str], Client]] = {
            "signup": partial(drip_client, slug=args.slug),
            "bare": bare_client,
        }
        totals = {name: Result(0, 0, 0.0, 0.0) for name in servers}
        try:
            servers["signup"].wait_ready(f"/subscribe/{args.slug}")
            servers["bare"].wait_ready("/")
            for name, server in servers.items():
                drive(args.clients, 1.0, clients[name](server.port, f"warm-{name}"))
            # short alternating rounds, so a change in the machine's load hits both alike
            for round_ in range(args.rounds):
                for name, server in servers.items():
                    part = drive(
                        args.clients,
                        args.seconds / args.rounds,
                        clients[name](server.port, f"{name}{round_}"),
                    )
                    total = totals[name]
                    totals[name] = Result(
                        total.ok + part.ok,
                        total.failed + part.failed,
                        total.seconds + part.seconds,
                        total.client_cpu + part.client_cpu,
                    )
        finally:
            for server in servers.values():
                server.stop()
        results = totals
        intake_seconds, taken = take_in_all(env)
        with engine.connect() as conn:
            readers = conn.execute(text("SELECT count(*) FROM subscribers")).scalar_one()
            rows = conn.execute(text(f"SELECT count(*) FROM {BARE_TABLE}")).scalar_one()
        engine.dispose()

    signup, bare = results["signup"], results["bare"]
    print(
        f"gunicorn {args.workers} sync workers, {args.clients} client threads, SQLite, "
        f"{args.seconds:g} s per app in {args.rounds} alternating rounds "
        f"(client on the same machine); course {args.slug} of {args.sequences}"
    )
    print(
        f"signup  {signup.rate:8.1f} req/s  ({signup.ok} sign-ups, {signup.failed} failed; "
        f"client CPU {signup.client_cpu:.1f} s)"
    )
    print(
        f"take-in {taken / intake_seconds:8.1f} /s     ({taken} queued sign-ups taken in by "
        f"the worker in {intake_seconds:.1f} s; {readers} subscribers stored)"
    )
    print(
        f"bare    {bare.rate:8.1f} req/s  ({bare.ok} inserts, {bare.failed} failed; "
        f"{rows} rows stored; client CPU {bare.client_cpu:.1f} s)"
    )
    print(f"signup_vs_bare {signup.rate / bare.rate:.2f}")


if __name__ == "__main__":
    main()
