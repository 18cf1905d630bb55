"""Shared fixtures.

`db_url` runs a test once on SQLite and once on PostgreSQL. Each PostgreSQL test gets a
schema of its own (through `search_path`), so tests never see each other's rows. Under
`CI=true` an unreachable PostgreSQL fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from vpt_tracker.normalize import title_key
from vpt_tracker.store import make_engine
from vpt_tracker.store.migrate import upgrade

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PG_URL = os.environ.get("VPT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"

_pg_error: str | None = None
_pg_checked = False


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can (checked once per session)."""
    global _pg_checked, _pg_error
    if not _pg_checked:
        _pg_checked = True
        try:
            engine = create_engine(PG_URL)
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            engine.dispose()
        except Exception as exc:  # any failure means "not usable here"
            _pg_error = str(exc).splitlines()[0]
    return _pg_error


def require_postgres() -> None:
    reason = postgres_unavailable()
    if reason is None:
        return
    message = f"PostgreSQL at {PG_URL} is unreachable: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
    pytest.skip(message + " (set VPT_TEST_POSTGRES_URL, or run under CI=true to make this fatal)")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a migrated, empty database (SQLite and PostgreSQL)."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def shared_dir() -> Path:
    """../shared, for the optional large-data tests; they skip when it is absent."""
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is absent: this test reads the large shared data set")
    return SHARED


@pytest.fixture(scope="session")
def prompt_papers() -> dict[str, dict[str, str]]:
    """Real prompt-learning papers with abstracts (fixtures/classify), by folded title."""
    papers: dict[str, dict[str, str]] = {}
    for name in ("novel_positive", "novel_negative", "relevant"):
        for line in (FIXTURES / "classify" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            papers.setdefault(title_key(row["title"]), row)
    return papers
