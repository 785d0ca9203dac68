"""Engine, sessions and migrations.

SQLite runs in WAL mode with `synchronous=NORMAL` (a commit is an append, not an fsync; a
killed process loses nothing committed). Every PostgreSQL connection commits with
`synchronous_commit` on, whatever the server's default: a commit the server acknowledged
survives its crash, which the dispatcher's one-duplicate-per-session bound rests on (it
hands over the next message only once the previous outcome is committed).

SQLite stores whatever bytes it is given as TEXT (a manual `UPDATE`, an import bug), and
sqlite3 raises on the first value that is not UTF-8, failing the whole query: one reader's
mangled name would stop everyone's mail. So text is decoded leniently, a bad byte becoming
U+FFFD; PostgreSQL refuses invalid UTF-8 on the way in.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from drip.core.files import create_private_file

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class DatabaseProblem(Exception):
    """The database cannot be used as configured; the message says what and what to do."""


def make_engine(url: str, *, pooler: bool = False, **kwargs: Any) -> Engine:
    """An engine for `url`. It connects lazily; a SQLite file is never created here (only
    `migrate`, that is `drip init`, makes one), so a mistyped path is an error, not an
    empty database. Raises DatabaseProblem for a URL no installed driver can use.

    `pooler`: PostgreSQL is reached through a pooler in transaction mode (DRIP_DATABASE_POOLER),
    which may hand each transaction another server connection. A statement prepared on one
    is unknown on the next (or already there, under its name), so nothing is prepared:
    psycopg's `prepare_threshold` is None, which drip.store.deferred follows too; and no
    setting is passed at connect, which the pooler would refuse or keep for one connection."""
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
            event.listen(engine, "do_connect", _sqlite_exists)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        given = kwargs.pop("connect_args", {})
        if pooler:
            options = {"prepare_threshold": None, **given}
        else:
            options = {"options": "-c synchronous_commit=on", **given}
        return create_engine(url, pool_pre_ping=True, connect_args=options, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DatabaseProblem(
            f"cannot use the database URL {_hidden(url)!r} ({reason}): use "
            "sqlite:////path/to/drip.sqlite3 or postgresql://user@host/name; "
            "check DRIP_DATABASE_URL"
        ) from None


def _hidden(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@", 1)[-1] if "@" in url else url


def _sqlite_exists(dialect: Any, _record: Any, cargs: Any, _cparams: Any) -> None:
    """Before SQLite opens a file: refuse a missing one instead of creating it empty."""
    database = str(cargs[0]) if cargs else ""
    on_disk = database not in ("", ":memory:") and not database.startswith("file:")
    if on_disk and not Path(database).exists():
        raise DatabaseProblem(f"no drip database at {database}: run `drip init` first")


# sqlite3 then calls this per text value read (about a microsecond more than its built-in
# decoding): small beside rendering and sending a message.
_lenient_text = partial(str, encoding="utf-8", errors="replace")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.text_factory = _lenient_text
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine (its lock files sit beside it); None otherwise."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    return database if database and database != ":memory:" else None


def make_sessionmaker(engine: Engine, info: dict[str, Any] | None = None) -> sessionmaker[Session]:
    """Sessions on `engine`; `info` is handed to each one (`Session.info`)."""
    return sessionmaker(engine, expire_on_commit=False, info=info)


def alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (`drip init`); the one place a SQLite file
    is created, 0600 before SQLite opens it (SQLite gives its -wal and -shm files the mode
    of the database file)."""
    if database := sqlite_file(engine):
        create_private_file(Path(database))
    command.upgrade(alembic_config(engine), "head")


def check_database(engine: Engine) -> None:
    """Raise DatabaseProblem, in one line, unless `engine` reaches a database `drip init`
    made: a server that does not answer, a missing SQLite file, no drip tables."""
    try:
        with engine.connect() as connection:
            has_tables = inspect(connection).has_table("alembic_version")
    except OperationalError as error:
        raise DatabaseProblem(unreachable(engine, error)) from None
    except DatabaseError as error:  # reached, but not a database: a SQLite URL naming another file
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseProblem(
            f"{where} is not a database ({error.orig}): check DRIP_DATABASE_URL"
        ) from None
    if not has_tables:
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseProblem(
            f"this database has no drip tables: run `drip init` (DRIP_DATABASE_URL {where})"
        )


def unreachable(engine: Engine, error: OperationalError) -> str:
    """'cannot reach PostgreSQL at host:port: connection refused; check DRIP_DATABASE_URL'."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        where, kind = url.database or ":memory:", "SQLite database"
    else:
        where, kind = f"{url.host or 'localhost'}:{url.port or 5432}", "PostgreSQL"
    first = str(error.orig or error).strip().splitlines()[0]
    reason = first.rsplit(" failed: ", 1)[-1].removeprefix("connection failed: ")
    reason = reason.removeprefix("FATAL:").strip()
    advice = "check DRIP_DATABASE_URL"
    if "unsupported startup parameter" in reason:  # PgBouncer's answer to drip's settings
        advice = "behind a pooler such as PgBouncer, set DRIP_DATABASE_POOLER=true"
    return f"cannot reach {kind} at {where}: {reason[:1].lower()}{reason[1:]}; {advice}"
