"""Engines, sessions and schema upgrades.

One engine per database URL. SQLite gets foreign keys and a busy timeout, so that the
review UI and a nightly run can share the embedded database; PostgreSQL is used as is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker


class StoreError(Exception):
    """The database cannot be used (unreachable, bad URL, not initialised)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MB of pages: index lookups of a 300k store stay in memory
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; a SQLite file's folder is created on first use."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    except ModuleNotFoundError as exc:
        raise StoreError(f"no driver for {parsed.get_backend_name()}: {exc}") from None


def check_connection(engine: Engine) -> None:
    """Fail early, with one line, if the database cannot be reached."""
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except (OperationalError, sqlite3.OperationalError) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise StoreError(f"cannot reach database {safe_url(engine)}: {reason}") from None


def safe_url(engine_or_url: Engine | str) -> str:
    """The URL with any password hidden, for messages and logs."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.render_as_string(hide_password=True)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits together on success and rolls back on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session


def is_initialised(engine: Engine) -> bool:
    return inspect(engine).has_table("alembic_version")
