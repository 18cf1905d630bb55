"""What every command shares: the resolved settings, one engine, and error handling."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from vpt_tracker import logs
from vpt_tracker.config import ConfigError, Settings, default_database_url, load_settings
from vpt_tracker.errors import EX_INTERRUPTED, UserError
from vpt_tracker.files import sync_folder, temporary_file
from vpt_tracker.store import (
    EX_UNAVAILABLE,
    StoreError,
    check_connection,
    is_initialised,
    make_engine,
    safe_url,
    server_unavailable,
)
from vpt_tracker.store.migrate import upgrade

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class AppContext:
    config_file: Path | None = None
    database_url: str | None = None
    verbosity: int = 0
    _settings: Settings | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file, database_url=self.database_url)
            logs.configure(self.verbosity, secrets=secret_values(self._settings))
        return self._settings

    def engine(self, migrate: bool = True) -> Engine:
        """The database engine; by default the schema is created or upgraded on first use.

        Upgrading on use (not only in `init`) means a maintainer never meets a "no such
        table" error after installing a newer version.
        """
        if self._engine is None:
            url = self.settings.database_url
            engine = make_engine(url, create_folder=url == default_database_url(self.settings.data_dir))
            check_connection(engine)
            if migrate:
                upgrade(engine)
            elif not is_initialised(engine):
                raise UserError("the database is not initialised; run `vpt-tracker init`")
            self._engine = engine
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def secret_values(settings: Settings) -> list[str]:
    values = []
    for secret in (settings.github.token, settings.smtp.password):
        if secret is not None:
            values.append(secret.get_secret_value())
    return values


#: The exit code when standard output's reader went away (`| head`): 128 + SIGPIPE, what a
#: shell reports for `cat`, `grep` or `yes` in the same place.
EX_BROKEN_PIPE = 128 + 13


def run_guarded(action: Callable[[], T]) -> T:
    """Run a command; known errors become `Error: <one line>` and their exit code.

    A reader of standard output that stops early (`classify score --output - | head`) ends
    the command quietly with exit code 141, not click's bare exit 1, which looked like a
    failure. Standard output is flushed here, so that what a command leaves in its buffer
    meets the closed pipe now, not in Python's exit ("Exception ignored ...", exit 120).
    """
    try:
        result = action()
        sys.stdout.flush()
        return result
    except BrokenPipeError:
        if not _stdout_is_gone():
            raise  # a socket's (a server gone): an error like any other
        _quiet_exit()
    except UserError as exc:
        _fail(str(exc), exc.exit_code)
    except ConfigError as exc:
        _fail(str(exc), 2)
    except StoreError as exc:
        _fail(str(exc), exc.exit_code)  # 69 for a database server that is down
    except DBAPIError as exc:
        # The database itself said no: a read-only file, a full disk, a role without the
        # rights. The transaction was rolled back, so one line says what the database said.
        # A server gone mid-command (a restart, a failover, a terminated session) is as
        # unavailable as one that never answered: exit 69, try again later (it was 2). Any
        # other error of the database (a bad statement) is a bug: re-raised.
        reason = str(exc.orig or exc).strip().splitlines()[0]
        if server_unavailable(exc):
            log.debug("database connection lost", exc_info=True)
            _fail(f"lost the connection to {_database_in_use()}: {reason}", EX_UNAVAILABLE)
        if not refused_by_database(exc):
            raise
        log.debug("database error", exc_info=True)
        _fail(f"the database refused the command: {reason}", 2)
    except KeyboardInterrupt:
        # Not click's `Aborted!` and exit 1: for `run` that code means "some sources failed,
        # their windows are queued", which a Ctrl-C is not. 130 is the shell's SIGINT code.
        _fail("interrupted", EX_INTERRUPTED)
    except click.Abort as exc:
        # A prompt (`review bulk-reject`'s question) turns Ctrl-C into click's Abort, raised
        # while handling the KeyboardInterrupt: it was `Aborted!` and exit 1 there. A "no"
        # to the question is an Abort of its own, and stays click's.
        if isinstance(exc.__context__, KeyboardInterrupt):
            _fail("interrupted", EX_INTERRUPTED)
        raise
    raise AssertionError("unreachable")


def _database_in_use() -> str:
    """The running command's database, password hidden, for a message ("the database" when
    the command has none open)."""
    ctx = click.get_current_context(silent=True)
    app = ctx.find_object(AppContext) if ctx is not None else None
    if app is None or app._engine is None:
        return "the database"
    return f"database {safe_url(app._engine)}"


#: PostgreSQL's SQLSTATEs for what a maintainer's set-up refuses (not a bug of ours): no right
#: on a schema or table (a role that may not create in `public`, PostgreSQL 15's default for
#: ordinary users), a search_path schema that does not exist, a read-only standby.
REFUSED_SQLSTATES = frozenset({"42501", "3F000", "25006"})


def refused_by_database(exc: DBAPIError) -> bool:
    """Whether the database refused the command for a reason of its own set-up."""
    return isinstance(exc, OperationalError) or getattr(exc.orig, "sqlstate", None) in REFUSED_SQLSTATES


def _stdout_is_gone() -> bool:
    """Whether standard output's reader has gone, so a BrokenPipeError was ours to write.

    A pipe (or socket) whose reader closed polls as an error or a hang-up; a file, a terminal
    or a live pipe does not. A socket's BrokenPipeError (an SMTP or HTTP server gone) must
    stay an error, so it is not enough that one was raised.
    """
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream (tests): never a pipe
        return False
    if not hasattr(select, "poll"):  # Windows: no poll, and no other pipe worth telling apart
        return True
    poller = select.poll()
    poller.register(descriptor, 0)  # errors and hang-ups are reported whatever is asked for
    return any(events & (select.POLLERR | select.POLLHUP) for _fd, events in poller.poll(0))


def _quiet_exit() -> None:
    # Standard output now goes nowhere: Python flushes it again on the way out, and a
    # second BrokenPipeError there would print "Exception ignored" and exit 120.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    sys.exit(EX_BROKEN_PIPE)


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


pass_app = click.make_pass_decorator(AppContext)

#: The type of every row id the CLI takes (candidate, paper, run, digest): ids are int4 on
#: PostgreSQL, so 0, negatives and larger numbers are usage errors, not overflow tracebacks.
ROW_ID = click.IntRange(1, 2**31 - 1)
#: A number of rows (`review list --limit`): no more than there can be ids (SQLite's LIMIT
#: overflowed past 2**63 with a traceback).
ROW_COUNT = ROW_ID
#: A random seed: numpy takes 0 .. 2**32 - 1 (a larger one was a ValueError traceback).
SEED = click.IntRange(0, 2**32 - 1)


class FiniteFloatRange(click.FloatRange):
    """A float range that refuses `nan` and `inf`: click's FloatRange accepts `nan` (it compares
    false with either bound), so `bulk-reject --below nan` was taken and rejected nothing."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


#: A relevance score or a probability, 0 .. 1, as every float option of the CLI takes one.
SCORE = FiniteFloatRange(0, 1)


def echo_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


#: The type of every `--output` option: a file, or `-` for standard output. A folder, a
#: missing folder or a file that cannot be written is `write_output`'s one-line error.
OUTPUT_PATH = click.Path(path_type=Path, allow_dash=True)


def to_stdout(path: Path | None) -> bool:
    return path is None or str(path) == "-"


@contextmanager
def write_output(path: Path | None, *, binary: bool = False) -> Iterator[IO[Any]]:
    """The stream a command writes its result to: standard output when `path` is None or
    `-`, else the file `path`.

    The file is written whole or not at all: into a temporary file of its own beside it
    (`files.temporary_file`: two commands writing one path no longer share `<path>.tmp`),
    fsynced, renamed over `path` once everything is written, and removed on any error; one
    left by a writer that was killed is removed by the next writer of `path`. An error
    writing it (a missing folder, no permission, a folder in its place, a full disk) is
    `UserError`: `cannot write PATH: why`.
    """
    if to_stdout(path):
        sys.stdout.flush()  # what was echoed before goes first
        stream: IO[Any] = sys.stdout.buffer if binary else sys.stdout
        yield stream
        stream.flush()
        return
    assert path is not None
    try:
        options: dict[str, Any] = {} if binary else {"encoding": "utf-8", "newline": ""}
        with temporary_file(path.parent, path.name, "wb" if binary else "w", **options) as handle:
            tmp = Path(handle.name)
            try:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
                tmp.replace(path)  # before the handle closes: its lock says it is being written
            except BaseException:
                tmp.unlink(missing_ok=True)  # while still locked, as `temporary_file` asks
                raise
        sync_folder(path.parent)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    log.info("wrote %s", path)
