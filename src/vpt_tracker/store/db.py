"""Engines, sessions and schema upgrades.

One engine per database URL. SQLite gets foreign keys and a busy timeout, so that the
review UI and a nightly run can share the embedded database; PostgreSQL is used as is.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
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
    # SQLite's own lower() folds ASCII only, PostgreSQL's every script: the review filter's
    # "Überblick" or "ÉCHO" must match the same papers on both stores.
    dbapi_connection.create_function("lower", 1, _fold_or_none, deterministic=True)


def fold_case(text: str) -> str:
    """`text` in lower case the way PostgreSQL's lower() does it, character by character.

    Python's str.lower alone would write a word-final capital sigma as ς where PostgreSQL
    writes σ, so a Greek filter word would match on one store and not the other.
    """
    if "Σ" not in text:
        return text.lower()
    return "".join(ch.lower() for ch in text)


def _fold_or_none(value: Any) -> Any:
    return fold_case(value) if isinstance(value, str) else value


def make_engine(url: str, *, create_folder: bool = False, **kwargs: Any) -> Engine:
    """An engine for `url`; a malformed URL or an unknown kind of database is `StoreError`.

    A SQLite file's folder must exist, so that a typo in the path is an error rather than
    a new empty database somewhere; `create_folder` makes it (the default database, in the
    data dir, is made on first use).
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StoreError(f"not a database URL: {redact(url)!r}") from None
    if parsed.get_backend_name() == "sqlite":
        _sqlite_folder(parsed, create_folder)
    elif parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    shown = parsed.render_as_string(hide_password=True)
    options = kwargs if parsed.get_backend_name() == "sqlite" else {"pool_pre_ping": True, **kwargs}
    try:
        engine = create_engine(parsed, **options)
    except NoSuchModuleError:
        raise StoreError(
            f"unknown database kind {parsed.drivername!r} in {shown}: "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from None
    except ModuleNotFoundError as exc:
        raise StoreError(f"no driver for {parsed.get_backend_name()}: {exc}") from None
    except ArgumentError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise StoreError(f"not a usable database URL {shown}: {reason}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_folder(url: URL, create: bool) -> None:
    database = url.database
    if not database or database == ":memory:" or url.query.get("uri") == "true":
        return
    folder = Path(database).parent
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot make the folder {folder} for the database: {exc.strerror}") from None
    if not folder.is_dir():
        raise StoreError(f"the folder of the SQLite database {database} does not exist")


def redact(url: str) -> str:
    """A URL that may not parse, with whatever stands for a password hidden, for messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def check_connection(engine: Engine) -> None:
    """Fail early, with one line, if the database cannot be reached or is not a database."""
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except (DBAPIError, sqlite3.Error) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        if engine.dialect.name == "sqlite" and "file is not a database" in reason:
            raise StoreError(f"{engine.url.database} is not a SQLite database file ({reason})") from None
        raise StoreError(f"cannot reach database {safe_url(engine)}: {reason}") from None


def safe_url(engine_or_url: Engine | str) -> str:
    """The URL with any password hidden, for messages and logs (also one that does not parse)."""
    if isinstance(engine_or_url, Engine):
        return engine_or_url.url.render_as_string(hide_password=True)
    try:
        return make_url(engine_or_url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return redact(engine_or_url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits together on success and rolls back on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session


@contextmanager
def schema_transaction(connection: Connection, *, write: bool) -> Iterator[None]:
    """Make a schema change on `connection` all or nothing, on SQLite too (for the migrations).

    Python's sqlite3 driver opens a transaction only before INSERT, UPDATE or DELETE: the
    CREATE TABLEs of a migration ran outside any, so a kill part-way left half a schema
    with no revision, and every later command failed with "table ... already exists". Here
    the driver is told to leave transactions alone and one is opened by hand around the
    whole upgrade; SQLite's DDL is transactional. `write` (an upgrade is due) opens it
    IMMEDIATE: two commands starting on a new database then migrate one after the other
    instead of both creating the same tables (the second failed with "already exists"),
    and a read-only database at its head revision is never asked for the write lock.
    PostgreSQL's DDL is transactional as is; an advisory lock orders two upgrades there.
    """
    if connection.dialect.name != "sqlite":
        with connection.begin():
            if write and connection.dialect.name == "postgresql":
                # The same one-after-the-other for PostgreSQL, per schema, until the commit.
                key = "hashtext('vpt-tracker schema of ' || current_schema())"
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({key})")
            yield
        return
    driver = connection.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    previous = driver.isolation_level
    driver.isolation_level = None  # the driver no longer opens (or ends) transactions by itself
    enforced = driver.execute("PRAGMA foreign_keys").fetchone()
    if write:
        # A table that SQLite cannot alter in place is rebuilt (copy, drop, rename: Alembic's
        # batch mode), and dropping the old one would run its ON DELETE actions: rebuilding
        # `papers` emptied `sightings`. SQLite's own recipe: foreign keys off around the
        # transaction (the pragma is ignored inside one), checked whole before the commit.
        driver.execute("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
            yield  # commit() and rollback() end the open transaction whatever the setting
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all() if write else []
            if broken:
                raise StoreError(f"the schema upgrade would break foreign keys: {broken[:5]}")
    finally:
        if write and enforced and enforced[0]:
            driver.execute("PRAGMA foreign_keys=ON")
        driver.isolation_level = previous  # the connection goes back to the pool as it was


def is_initialised(engine: Engine) -> bool:
    return inspect(engine).has_table("alembic_version")
