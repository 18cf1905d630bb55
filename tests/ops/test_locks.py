"""The pipeline lock: a second holder is refused, and a killed holder frees it."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ops.pg_lock import end_lock_session, lock_holders
from vpt_tracker.locks import EX_TEMPFAIL, AlreadyRunning, LockLost, exclusive, sqlite_lock_path, sweep_unheld
from vpt_tracker.store import make_engine


def test_second_holder_is_refused_until_the_first_releases(engine: Engine) -> None:
    with exclusive(engine, "pipeline"):
        with pytest.raises(AlreadyRunning) as caught, exclusive(engine, "pipeline"):
            pass
        assert caught.value.exit_code == EX_TEMPFAIL == 75
        assert "in progress" in str(caught.value)
        # A different lock name is independent (the digest does not wait for a nightly run).
        with exclusive(engine, "digest"):
            pass
    with exclusive(engine, "pipeline"):
        pass


def test_lock_of_a_killed_process_is_released(engine: Engine, db_url: str) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from vpt_tracker.locks import exclusive
        from vpt_tracker.store import make_engine
        engine = make_engine({db_url!r})
        with exclusive(engine, "pipeline"):
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning), exclusive(engine, "pipeline"):
            pass
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    # PostgreSQL notices the closed socket at once; retry briefly for the backend to go away.
    for _ in range(50):
        try:
            with exclusive(engine, "pipeline"):
                return
        except AlreadyRunning:
            time.sleep(0.1)
    pytest.fail("the lock of a SIGKILLed process was not released")


def test_a_lock_whose_connection_the_server_dropped_is_left_quietly(engine: Engine) -> None:
    """`serve` holds its lock for days; a PostgreSQL restart in that time ends the session
    and the lock with it. Letting go of it then raised "terminating connection due to
    administrator command": a service stopped cleanly by SIGTERM exited 2 with that error."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the lock lives in a PostgreSQL session")
    with exclusive(engine, "serve"):
        end_lock_session(engine, "serve")
    with exclusive(engine, "serve"):  # and it is free again
        pass


def test_a_lock_whose_session_ended_is_taken_again_or_else_lost(engine: Engine) -> None:
    """`serve` holds its lock for days. A PostgreSQL restart ends its session and the lock with
    it, and the service went on without it: a second `serve` started then got the lock and
    both ran every job. `check` takes the lock again in a new session, or raises `LockLost`
    (exit 75) when another process took it first."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the lock lives in a PostgreSQL session")
    with exclusive(engine, "serve", busy="another vpt-tracker serve is running") as held:
        assert held.check() is False  # held all along
        first = end_lock_session(engine, "serve")
        assert held.check() is True
        with engine.connect() as connection:
            (again,) = lock_holders(connection, "serve")
        assert again != first
        with pytest.raises(AlreadyRunning), exclusive(engine, "serve"):
            pass  # a second holder is refused again
        assert held.check() is False

        end_lock_session(engine, "serve")
        with exclusive(engine, "serve"):  # another process took it while the session was gone
            with pytest.raises(LockLost) as caught:
                held.check()
            assert caught.value.exit_code == EX_TEMPFAIL
            assert str(caught.value).startswith("another vpt-tracker serve is running on this database")
            with engine.connect() as connection:
                assert len(lock_holders(connection, "serve")) == 1
    with exclusive(engine, "serve"):  # the lost lock let go of nothing it did not hold
        pass


def test_a_transient_lock_file_goes_with_its_lock(tmp_path: Path) -> None:
    """A lock taken once (a week's digest) left its file beside the database for good; a
    transient one removes it as it lets go. Others keep theirs: it is only a handle."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with exclusive(engine, "digest-2026-W47", transient=True):
        assert sqlite_lock_path(engine, "digest-2026-W47").exists()
    with exclusive(engine, "pipeline"):
        pass
    assert sorted(path.name for path in tmp_path.iterdir()) == ["store.db.pipeline.lock"]


def test_a_lock_file_removed_between_its_open_and_its_lock_is_not_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One who opens a transient lock's file just before its holder removes it and lets go,
    and locks it just after, locked a file no longer at the path, while the next one made a
    new file there and locked that: both held the lock, two sends of one week. A lock is
    held only if the file locked is still the one at the path, else taken anew."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    name = "digest-2026-W47"
    real_flock = fcntl.flock
    others = ExitStack()
    interleaved: list[bool] = []

    def flock_late(descriptor: int, operation: int) -> None:
        if operation & fcntl.LOCK_EX and not interleaved:
            interleaved.append(True)
            # Between this one's open and its flock: a send takes the lock and lets go,
            # removing the file, and the next one takes a new file at the path.
            with exclusive(engine, name, transient=True):
                pass
            others.enter_context(exclusive(engine, name, transient=True))
        real_flock(descriptor, operation)

    monkeypatch.setattr(fcntl, "flock", flock_late)
    with others, pytest.raises(AlreadyRunning), exclusive(engine, name, transient=True):
        pass
    assert interleaved
    with exclusive(engine, name, transient=True):  # let go, it is free
        pass


def test_a_sweep_removes_only_lock_files_nobody_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sweep_unheld` removes a wanted lock file while it holds its lock; a held one stays, a
    lock not wanted stays, and so does a file that a holder removed and the next one made
    anew between the sweep's open and its lock: that file is no longer the one it locked."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    for name in ("digest-2026-W40", "digest-2026-W41", "digest-2026-W42", "pipeline"):
        sqlite_lock_path(engine, name).touch()
    real_flock = fcntl.flock
    replaced: list[str] = []

    def flock_late(descriptor: int, operation: int) -> None:
        path = sqlite_lock_path(engine, "digest-2026-W42")
        if operation & fcntl.LOCK_EX and not replaced and os.fstat(descriptor).st_ino == path.stat().st_ino:
            replaced.append("digest-2026-W42")
            path.unlink()  # its holder removed it as it let go; the next one makes it anew
            held.enter_context(exclusive(engine, "digest-2026-W42", transient=True))
        real_flock(descriptor, operation)

    with ExitStack() as held:
        held.enter_context(exclusive(engine, "digest-2026-W41", transient=True))
        monkeypatch.setattr(fcntl, "flock", flock_late)
        removed = sweep_unheld(engine, lambda name: name.startswith("digest-"))
        monkeypatch.undo()
        assert (removed, replaced) == (["digest-2026-W40"], ["digest-2026-W42"])
        assert sorted(path.name for path in tmp_path.glob("*.lock")) == [
            "store.db.digest-2026-W41.lock",
            "store.db.digest-2026-W42.lock",
            "store.db.pipeline.lock",
        ]
        for name in ("digest-2026-W41", "digest-2026-W42"):  # still held, by the one that made it
            with pytest.raises(AlreadyRunning), exclusive(engine, name, transient=True):
                pass
    assert sorted(path.name for path in tmp_path.glob("*.lock")) == ["store.db.pipeline.lock"]
    assert sweep_unheld(make_engine("postgresql+psycopg://u@127.0.0.1/none"), lambda name: True) == []
