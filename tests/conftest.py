"""Fixtures for the real parts: an SMTP server on loopback, SQLite and PostgreSQL databases
migrated with Alembic, and a clock that only moves when a test moves it."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import sync_playwright
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from drip.app import create_app
from drip.audience import intake
from drip.audience.intake import Intake
from drip.audience.subscriptions import Consent, subscribe
from drip.audience.tags import add_tags
from drip.core.clock import FrozenClock, as_utc
from drip.core.config import Settings, load_settings
from drip.services import Services, build_services
from drip.store.db import make_engine, migrate
from drip.store.models import Base, Delivery, Enrollment, EnrollmentStatus, Reply, Subscriber
from tests.smtp import SmtpServer, free_port

TESTS = Path(__file__).resolve().parent
POSTGRES_URL = os.environ.get(
    "DRIP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# Still argon2id, at its lowest cost: the tests log in hundreds of times, and the throttling
# they check counts attempts, not how long one takes. Production keeps argon2's defaults.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def unavailable(reason: str) -> NoReturn:
    """A real part (a server, the browser) is missing: skip here, but fail in CI (`CI=true`),
    where a green run must mean the PostgreSQL and Chromium tests ran."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a missing server fails the run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def clock() -> FrozenClock:
    """Monday 2 March 2026, 08:00 in New York: an hour before the tiny course's window."""
    return FrozenClock(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "drip.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh SQLite database, migrated (a copy of one migrated once per session)."""
    target = tmp_path / "drip.sqlite3"
    shutil.copy(_sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture(scope="session")
def _postgres_database() -> Iterator[str]:
    try:
        admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # any failure to connect means: no server here
        unavailable(
            f"PostgreSQL is not reachable at {POSTGRES_URL} "
            f"(set DRIP_TEST_POSTGRES_URL): {str(error).splitlines()[0]}"
        )
    name = f"drip_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# Children before parents, so no foreign key stops a DELETE; then every sequence back to 1.
_EMPTY_POSTGRES = "; ".join(
    [f'DELETE FROM "{table.name}"' for table in reversed(Base.metadata.sorted_tables)]
    + [
        "SELECT setval(c.oid, 1, false) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'S' AND n.nspname = current_schema()"
    ]
)


@pytest.fixture
def postgres_url(_postgres_database: str) -> str:
    """The session's PostgreSQL database, emptied before the test, ids from 1 again.

    DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE gives each of the tables
    new files and syncs them (about 1 s a test on a busy machine, against 0.05 s). Not a
    rolled-back transaction either: every test here hands the URL to engines of its own
    (the dispatcher, the app, worker processes), which must see real commits."""
    engine = make_engine(_postgres_database)
    with engine.begin() as conn:
        conn.exec_driver_sql(_EMPTY_POSTGRES)
    engine.dispose()
    return _postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


TESTS_DAILY_CAP = 100  # DRIP_READER_DAILY_CAP in the tests' settings (the product's is 1)


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "sequences_dir": TESTS / "sequences",
        "base_url": "http://drip.test",
        "secret_key": "test-secret",
        "postal_address": "1 Test Street, Springfield",
        # Many tests send one reader several messages in a day (a welcome, then a broadcast;
        # lessons run through in one go): the product's cap of one a day would hold them.
        # The caps' own tests (tests/dispatch/test_caps.py) set it back to 1.
        "reader_daily_cap": TESTS_DAILY_CAP,
        **overrides,
    }
    if values.get("smtp_url"):  # a local test relay over http links: the sanctioned switch
        values.setdefault("allow_unsafe_sending", True)
    return load_settings(environ={}, **values)


def count(svc: Services, model: type) -> int:
    """Rows of a table, in a session of their own."""
    with svc.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def next_due(svc: Services) -> datetime | None:
    """The earliest time a reader who is still in a course falls due, or None."""
    with svc.sessions() as session:
        due = session.scalar(
            select(func.min(Enrollment.due_at)).where(
                Enrollment.status.in_([EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING])
            )
        )
    return None if due is None else as_utc(due)


def _attempts(svc: Services) -> tuple[int, int]:
    with svc.sessions() as session:
        rows, attempts = session.execute(
            select(func.count(), func.coalesce(func.sum(Delivery.attempts), 0))
        ).one()
    return int(rows), int(attempts)


def advance_through_due_times(svc: Services, clock: FrozenClock, passes: int = 30) -> None:
    """A pass now, then the clock moved to each next due time with a pass there, until nobody
    is due. A pass a second before each due time must not try to send anything. A course
    takes a few passes per lesson this way, where stepping half an hour took hundreds."""
    dispatcher = svc.dispatcher()
    dispatcher.run_pass(clock())
    for _ in range(passes):
        due = next_due(svc)
        if due is None:
            return
        if due > clock():
            clock.set(due - timedelta(seconds=1))
            before = _attempts(svc)
            dispatcher.run_pass(clock())
            assert _attempts(svc) == before, f"a pass tried to send before the due time {due}"
            clock.set(due)
        dispatcher.run_pass(clock())
    raise AssertionError(f"readers are still due after {passes} passes")


def take_in(svc: Services) -> Intake:
    """What the worker does first in every pass: turn queued sign-ups into readers."""
    with svc.sessions() as session:
        return intake.take_in(session, svc.content.library())


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer) -> Settings:
    return make_settings(tmp_path, sqlite_url, smtp_url=smtp_server.url)


@pytest.fixture
def services(settings: Settings, clock: FrozenClock) -> Iterator[Services]:
    svc = build_services(settings, clock, password_hasher=CHEAP_HASHER)
    yield svc
    svc.engine.dispose()


@pytest.fixture
def app(settings: Settings, clock: FrozenClock) -> Iterator[Flask]:
    application = create_app(settings, clock=clock, password_hasher=CHEAP_HASHER)
    application.config["TESTING"] = True
    yield application
    application.extensions["drip"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


CHROMIUM = os.environ.get("DRIP_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = TESTS.parent / "artifacts" / "screenshots"


class LiveServer:
    """The app on a real loopback port, in a thread, for the browser to talk to."""

    def __init__(self, application: Flask, port: int) -> None:
        self.app = application
        self.server = make_server("127.0.0.1", port, application, threaded=True)
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def services(self) -> Services:
        svc: Services = self.app.extensions["drip"]
        return svc

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@contextmanager
def serving(
    tmp_path: Path, database_url: str, clock: FrozenClock, **overrides: Any
) -> Iterator[LiveServer]:
    """drip served on a free loopback port with these settings; its links (DRIP_BASE_URL)
    point at itself. Stopped, and its engine disposed, on the way out."""
    port = free_port()
    application = create_app(
        make_settings(tmp_path, database_url, base_url=f"http://127.0.0.1:{port}", **overrides),
        clock=clock,
        password_hasher=CHEAP_HASHER,
    )
    server = LiveServer(application, port)
    try:
        yield server
    finally:
        server.stop()
        server.services.engine.dispose()


@pytest.fixture
def live_server(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock
) -> Iterator[LiveServer]:
    """drip served on loopback, sending to the test's SMTP server."""
    with serving(tmp_path, sqlite_url, clock, smtp_url=smtp_server.url) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright, headless."""
    if not Path(CHROMIUM).exists():
        unavailable(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    tab = context.new_page()
    yield tab
    context.close()


def screenshot(page: Any, group: str, name: str) -> Path:
    """Save a screenshot under artifacts/screenshots/<group>/ (the README names the folder)."""
    folder = SCREENSHOTS / group
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def json_body(response: Any) -> Any:
    """A JSON answer's body (which a JSON endpoint always has)."""
    data = response.get_json()
    assert data is not None, response.get_data(as_text=True)
    return data


def enroll(
    svc: Services,
    email: str = "ada@example.org",
    slug: str = "tiny",
    *,
    confirmed: bool = True,
    first_name: str = "",
    timezone: str | None = None,
) -> int:
    """A reader the test signs up to `slug` (confirmed unless told otherwise), committed;
    the enrollment's id."""
    with svc.sessions() as session:
        enrollment = subscribe(
            session,
            svc.content.library(),
            slug,
            email,
            svc.clock(),
            consent=Consent(source="test", text="yes"),
            confirmed=confirmed,
            first_name=first_name,
            timezone=timezone,
        )
        session.commit()
        return enrollment.id


def tag(svc: Services, email: str, *tags: str) -> None:
    """Tag the reader with that address, as the test's own source; committed."""
    with svc.sessions() as session:
        reader = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
        add_tags(session, reader, list(tags), svc.clock(), "test")
        session.commit()


def courses_beside_tiny(tmp_path: Path, courses: dict[str, dict[str, str]]) -> Path:
    """A copy of tests/sequences in tmp_path with more courses beside it: each slug to its
    files (`sequence.yaml`, `01-hi.md` ...) and their text."""
    folder = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", folder)
    for slug, files in courses.items():
        (folder / slug).mkdir()
        for name, content in files.items():
            (folder / slug / name).write_text(content)
    return folder


@contextmanager
def services_with(
    tmp_path: Path,
    database_url: str,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    courses: dict[str, dict[str, str]],
) -> Iterator[Services]:
    """Services over tests/sequences and `courses` beside it (courses_beside_tiny), sending
    to `smtp_server`; the engine disposed after."""
    root = courses_beside_tiny(tmp_path, courses)
    settings = make_settings(tmp_path, database_url, smtp_url=smtp_server.url, sequences_dir=root)
    services = build_services(settings, clock, password_hasher=CHEAP_HASHER)
    try:
        yield services
    finally:
        services.engine.dispose()


def add_replies(session: Session, enrollment: Enrollment, at: datetime) -> None:
    """Two matched replies from Ada to `enrollment`'s welcome and second lesson, an hour
    apart from `at` ("About welcome.", "About two."); the caller commits."""
    for n, lesson in enumerate(["welcome", "two"]):
        session.add(
            Reply(
                key=f"<r{n}@example.org>",
                received_at=at + timedelta(hours=n),
                source="mailbox",
                sender="ada@example.org",
                subject=f"Re: {lesson}",
                body=f"About {lesson}.",
                matched=True,
                subscriber_id=enrollment.subscriber_id,
                enrollment_id=enrollment.id,
                sequence="tiny",
                lesson=lesson,
            )
        )
