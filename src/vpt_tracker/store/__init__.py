"""The store: tables, engines and sessions, and the queries the use cases share."""

from vpt_tracker.store.db import (
    EX_UNAVAILABLE,
    StoreError,
    StoreUnavailable,
    check_connection,
    is_initialised,
    make_engine,
    safe_url,
    server_unavailable,
    session_factory,
    transaction,
)

__all__ = [
    "EX_UNAVAILABLE",
    "StoreError",
    "StoreUnavailable",
    "check_connection",
    "is_initialised",
    "make_engine",
    "safe_url",
    "server_unavailable",
    "session_factory",
    "transaction",
]
