"""The PostgreSQL session that holds an advisory lock of `locks.exclusive`, and its end."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from vpt_tracker.locks import advisory_key

_HOLDERS = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory'"
    " AND granted AND (classid::bigint << 32 | objid::bigint) = :key"
)


def lock_holders(connection: Connection, name: str) -> list[int]:
    """The server pids of the sessions holding the lock `name` of the connection's schema."""
    schema = connection.execute(text("SELECT current_schema()")).scalar()
    return list(connection.execute(text(_HOLDERS), {"key": advisory_key(f"{schema}:{name}")}).scalars())


def end_lock_session(engine: Engine, name: str) -> int:
    """End the session holding the lock `name`, as a server restart does, and wait until it is
    gone (the lock with it); its pid."""
    with engine.connect() as connection:
        (pid,) = lock_holders(connection, name)
        ended = connection.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}).scalar()
        assert ended is True
        return pid
