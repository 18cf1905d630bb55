"""The pipeline lock: a second holder is refused, and a killed holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import Engine

from ops.pg_lock import end_lock_session, lock_holders
from vpt_tracker.locks import EX_TEMPFAIL, AlreadyRunning, LockLost, exclusive


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
