"""One pipeline run at a time, whatever started it (cron, the scheduler, a maintainer).

Two runs writing the same cursors would not corrupt anything (cursors and records commit
together), but they would fetch everything twice and make the run records meaningless, so
the second run is refused with exit code 75 (EX_TEMPFAIL: "try again later").

The lock must vanish when its holder dies, even by SIGKILL, or a crash would block every
later run until someone deletes a file by hand:
- PostgreSQL: a session-level advisory lock on a dedicated connection, keyed by the lock
  name and the current schema. The server drops it when the connection closes, and the
  kernel closes the socket when the process dies.
- SQLite: `flock` on a lock file next to the database file. The kernel releases it when
  the descriptor is closed, which includes process death. The file itself may stay
  behind; it is only a handle, never a marker. A lock taken once or rarely (a week's
  digest) is `transient`: its holder removes the file before it lets go, so that such
  files do not pile up. One who opened the file before it was removed would lock a file
  no one else can see: a lock is only held once the file locked is still the one at the
  path, else it is taken again. A holder killed in the instant before it removed its file
  leaves it: `sweep_unheld` removes such files, each only while it holds its lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from vpt_tracker.errors import UserError
from vpt_tracker.files import remove_unheld, same_file

EX_TEMPFAIL = 75


class AlreadyRunning(UserError):
    """Another process holds the lock; the CLI exits with 75 and this one line."""

    exit_code = EX_TEMPFAIL


class LockLost(AlreadyRunning):
    """The database session that held the lock ended, and another process took the lock."""


class HeldLock:
    """A lock that `exclusive` holds, for a holder that runs for days (`serve`) to look again.

    A file lock lasts as long as its descriptor: nothing can take it away, and `check` has
    nothing to do. A PostgreSQL lock lasts as long as its session (see `_PostgresHeldLock`).
    """

    def check(self) -> bool:
        """True when the lock had been lost and is held again; False when it never was lost."""
        return False


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_lock`, derived from the lock's name."""
    digest = hashlib.sha256(f"vpt-tracker:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def sqlite_lock_path(engine: Engine, name: str) -> Path:
    """`<database>.<name>.lock` beside the file; a temp-dir file for in-memory databases."""
    database = engine.url.database
    if database and database != ":memory:":
        return Path(database).with_name(f"{Path(database).name}.{name}.lock")
    key = hashlib.sha256(str(engine.url).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"vpt-tracker-{key}.{name}.lock"


def sweep_unheld(engine: Engine, wanted: Callable[[str], bool]) -> list[str]:
    """Remove the SQLite lock files beside the database whose lock name is `wanted` and that
    nobody holds (transient locks' files their holder was killed too early to remove); the
    names removed. Nothing on PostgreSQL, whose locks leave no file.

    A file goes only while this process holds its lock (a non-blocking `flock`, never a wait)
    and only if it is still the file at the path: a held one is left, and so is one that a
    holder removed and the next one made anew since it was opened here. One who opened it
    before it went and locks it after sees it gone and takes the lock anew (`_lock_file`).
    """
    if engine.dialect.name == "postgresql":
        return []
    sample = sqlite_lock_path(engine, "")  # `<database>..lock`: the folder and the names' head
    head, tail = sample.name[: -len(".lock")], ".lock"
    removed: list[str] = []
    try:
        entries = sorted(entry.name for entry in os.scandir(sample.parent))
    except OSError:  # a folder this user may not list: nothing to sweep
        return removed
    for entry in entries:
        if not (entry.startswith(head) and entry.endswith(tail) and len(entry) > len(head) + len(tail)):
            continue
        name = entry[len(head) : -len(tail)]
        if wanted(name) and remove_unheld(sample.parent / entry):
            removed.append(name)
    return removed


def _running(name: str) -> str:
    """What holds the lock `name`, for the message of one who cannot take it."""
    return f"another vpt-tracker {name} run is in progress"


@contextmanager
def exclusive(
    engine: Engine, name: str = "pipeline", busy: str | None = None, *, transient: bool = False
) -> Iterator[HeldLock]:
    """Hold the lock `name` for the database of `engine`, or raise `AlreadyRunning` at once.

    `busy` says what holds it, for the message (default: "another vpt-tracker NAME run is
    in progress"). `transient`: on SQLite, the lock file is removed as the lock is let go
    (a lock of one week's digest: one file per week piled up beside the database). The lock
    it yields can be checked again by a holder that runs for days.
    """
    busy = busy or _running(name)
    if engine.dialect.name == "postgresql":
        with _postgres_lock(engine, name, busy) as held:
            yield held
    else:
        with _file_lock(sqlite_lock_path(engine, name), name, busy, remove=transient):
            yield HeldLock()


@contextmanager
def exclusive_folder(directory: Path, name: str) -> Iterator[None]:
    """Hold the lock `name` on `directory` (`<directory>/.lock`), or raise `AlreadyRunning` at once.

    For what lives in files rather than in the database: a catalogue's model folder, whose
    two files two `classify train` runs would replace in turn (one's model beside the other's
    card). Keyed by the folder, not the database, since two configs may share a classifiers_dir.
    """
    with _file_lock(directory / ".lock", name, _running(name)):
        yield


def folder_locked(directory: Path) -> bool:
    """True while a process holds `exclusive_folder(directory, ...)` (a `classify train`
    saving into it); only looks, takes nothing."""
    try:
        descriptor = os.open(directory / ".lock", os.O_RDONLY)
    except OSError:
        return False  # no lock file: nobody has ever held it
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)  # closing releases the shared lock, if it was taken
    return False


@contextmanager
def _postgres_lock(engine: Engine, name: str, busy: str) -> Iterator[_PostgresHeldLock]:
    # A connection of its own: the lock lives as long as this session, independent of the
    # transactions that the run commits on other connections.
    connection = engine.connect()
    try:
        # Advisory locks are per database; two trackers may share one in separate schemas.
        schema = connection.execute(text("SELECT current_schema()")).scalar()
        key = advisory_key(f"{schema}:{name}")
        if not _try_advisory_lock(connection, key):
            raise AlreadyRunning(f"{busy} on this database; try later")
    except BaseException:
        connection.close()
        raise
    held = _PostgresHeldLock(engine, key, busy, connection)
    try:
        yield held
    finally:
        held.release()


def _try_advisory_lock(connection: Connection, key: int) -> bool:
    acquired = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
    connection.commit()
    return acquired


class _PostgresHeldLock(HeldLock):
    """An advisory lock and the session that holds it.

    The server ends the session, and the lock with it, when it restarts (or an administrator
    ends it); the holder goes on without knowing, and a second `serve` started then got the
    lock and ran every job beside the first. `check` sees the ended session and takes the
    lock again in a new one, or raises `LockLost` when another process took it meanwhile.
    """

    def __init__(self, engine: Engine, key: int, busy: str, connection: Connection) -> None:
        self.engine = engine
        self.key = key
        self.busy = busy
        self.connection: Connection | None = connection

    def check(self) -> bool:
        """See `HeldLock.check`. While the server cannot be reached it raises the driver's
        error (`DBAPIError`), and the next check tries again: nobody can take the lock then."""
        if self.connection is not None:
            try:
                self.connection.execute(text("SELECT 1"))
                self.connection.rollback()
                return False
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                self.connection.close()
                self.connection = None
        connection = self.engine.connect()
        try:
            if not _try_advisory_lock(connection, self.key):
                raise LockLost(
                    f"{self.busy} on this database: it took the lock while this one's database session"
                    " was gone (a PostgreSQL restart); this one stops"
                )
        except BaseException:
            connection.close()
            raise
        self.connection = connection
        return True

    def release(self) -> None:
        if self.connection is not None:
            try:
                _postgres_unlock(self.connection, self.key)
            finally:
                self.connection.close()
                self.connection = None


def _postgres_unlock(connection: Connection, key: int) -> None:
    """Let go of the lock; a session the server has ended (a restart, an administrator) took
    it along. `serve` holds its lock for days: the unlock on the dead session raised, and a
    service stopped cleanly by SIGTERM exited 2 with "terminating connection"."""
    try:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        connection.commit()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise


def _open_lock_file(path: Path, name: str) -> tuple[int, bool]:
    """The lock file's descriptor, and whether it was opened for writing.

    `flock` needs no write access, so a lock file this user may not write (made, mode 644,
    by the service's user, and used by a maintainer of its group) is opened read-only: it
    was opened for writing only, and every command that takes the lock ended in a
    `PermissionError` traceback. One that cannot be opened at all is one line, exit 2.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644), True
    except PermissionError:
        try:
            return os.open(path, os.O_RDONLY), False
        except OSError as exc:
            reason = exc.strerror or str(exc)
    except OSError as exc:
        reason = exc.strerror or str(exc)
    raise UserError(f"cannot take the {name} lock {path}: {reason}")


def _lock_file(path: Path, name: str, busy: str) -> tuple[int, bool]:
    """`_open_lock_file`'s descriptor, locked: the file at `path` now.

    A transient lock's holder removes the file before it lets go. One who opened it before
    that, and locks it after, holds a file that is no longer at the path, while the next one
    makes a new file there and locks that: both would hold the lock. So a lock is held only
    if the file locked is still the one at the path; if not, the path is opened again.
    """
    while True:
        descriptor, writable = _open_lock_file(path, name)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise AlreadyRunning(f"{busy} (lock {path}); try later") from None
        except BaseException:
            os.close(descriptor)
            raise
        if same_file(descriptor, path):
            return descriptor, writable
        os.close(descriptor)  # its holder removed it as it let go: the path is free


@contextmanager
def _file_lock(path: Path, name: str, busy: str, *, remove: bool = False) -> Iterator[None]:
    """`remove`: the file goes as the lock is let go, while it is still held (see `_lock_file`)."""
    descriptor, writable = _lock_file(path, name, busy)
    try:
        if writable:  # the holder's pid, for a maintainer who wonders who holds it; not used for locking
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            if remove:
                with contextlib.suppress(OSError):  # a folder this user may not write: it stays
                    path.unlink()
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
