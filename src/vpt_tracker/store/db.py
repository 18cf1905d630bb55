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
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

#: sysexits' EX_UNAVAILABLE: a service this command needs is down; running it again later,
#: unchanged, may well succeed (where 2 means "fix the command or its config").
EX_UNAVAILABLE = 69


class StoreError(Exception):
    """The database cannot be used (bad URL, not a database, unreachable); the CLI exits
    with `exit_code` and the message."""

    exit_code: int = 2


class StoreUnavailable(StoreError):
    """The database server did not answer, or answered that it takes no connections for now.

    Not the user's input: cron and monitoring must tell it from a bad command or config (2)
    to retry rather than fix. A server that answers and refuses (no such role or database,
    a wrong password) stays a `StoreError`: waiting will not help.
    """

    exit_code = EX_UNAVAILABLE


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


# The capitals whose lower case in Python's str.lower is not PostgreSQL's: a word-final Σ is ς
# there and σ in PostgreSQL, and İ (U+0130) is "i" and a combining dot above (two characters)
# there and "i" in PostgreSQL, as in `normalize.fold_text`. Every other character agrees.
_POSTGRES_LOWER = {"Σ": "σ", "İ": "i"}


def fold_case(text: str) -> str:
    """`text` in lower case the way PostgreSQL's lower() does it, character by character.

    Python's str.lower alone would write a word-final capital sigma as ς where PostgreSQL
    writes σ, and "İstanbul" as "i̇stanbul" where PostgreSQL writes "istanbul", so a filter
    word would match on one store and not the other.
    """
    if not any(capital in text for capital in _POSTGRES_LOWER):
        return text.lower()
    return "".join(_POSTGRES_LOWER.get(ch) or ch.lower() for ch in text)


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
    shown = shown_url(parsed)
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


#: Query parameters that libpq, and so psycopg, takes as a password: `?password=...` is as
#: good as `user:password@`, and the URL's own masking does not know it.
_PASSWORD_QUERY = re.compile(r"([?&](?:ssl)?password=)[^&]*", re.IGNORECASE)


def redact(url: str) -> str:
    """A URL that may not parse, with whatever stands for a password hidden, for messages."""
    return _PASSWORD_QUERY.sub(r"\1***", re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url))


def shown_url(url: URL) -> str:
    """`url` as messages and `config show` print it: its password hidden, in the query too."""
    return _PASSWORD_QUERY.sub(r"\1***", url.render_as_string(hide_password=True))


#: What PostgreSQL answers while it is up but takes no connections for now: starting up,
#: shutting down or in recovery (57P03), or all its connection slots taken (53300).
_NOT_NOW = ("the database system is", "too many clients", "remaining connection slots")


def check_connection(engine: Engine) -> None:
    """Fail early, with one line, if the database cannot be reached or is not a database.

    A server that cannot be reached now (`StoreUnavailable`, exit 69) is told apart from one
    that refuses what was asked of it (`StoreError`, exit 2): both were exit 2, and a cron
    job could not tell "fix your command" from "try again later".
    """
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except (DBAPIError, sqlite3.Error) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        if engine.dialect.name == "sqlite" and "file is not a database" in reason:
            raise StoreError(f"{engine.url.database} is not a SQLite database file ({reason})") from None
        if isinstance(exc, DBAPIError) and server_unavailable(exc):
            raise StoreUnavailable(f"cannot reach database {safe_url(engine)}: {reason}") from None
        raise StoreError(f"cannot connect to database {safe_url(engine)}: {reason}") from None


def server_unavailable(exc: DBAPIError) -> bool:
    """Whether `exc` says the database server is not there for now, not that it refused.

    The session was lost (a restart, a failover: SQLAlchemy invalidates the connection), or
    a connection failed for want of the server. psycopg gives a failed connection no SQLSTATE,
    so the text tells: a server that answered and refused (no such role or database, a wrong
    password) put its severity `FATAL:` in it; without one, nothing answered (the connection
    was refused or timed out, the host name did not resolve). A server's answer to a
    statement carries an SQLSTATE; a SQLite error none at all (no server, never unavailable).
    """
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError) or getattr(exc.orig, "sqlstate", "") is not None:
        return False
    message = str(exc.orig)
    return "FATAL:" not in message or any(phrase in message for phrase in _NOT_NOW)


def safe_url(engine_or_url: Engine | str) -> str:
    """The URL with any password hidden, for messages and logs (also one that does not parse)."""
    if isinstance(engine_or_url, Engine):
        return shown_url(engine_or_url.url)
    try:
        return shown_url(make_url(engine_or_url))
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
