"""Engine, sessions and migrations.

SQLite runs in WAL mode with `synchronous=NORMAL` (a commit is an append, not an fsync; a
killed process loses nothing committed). PostgreSQL dispatch sessions turn off
`synchronous_commit`, which only matters if the database server itself crashes.

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
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from drip.files import create_private_file

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:" and not database.startswith("file:"):
            # 0600 before SQLite opens it: SQLite gives its -wal and -shm files the mode
            # of the database file.
            create_private_file(Path(database))
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


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
    """Bring the schema to the newest migration (`drip init`)."""
    command.upgrade(alembic_config(engine), "head")
