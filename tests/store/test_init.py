"""`vpt-tracker init` creates or upgrades the database; a bad database is one line, exit 2."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import inspect

from vpt_tracker.cli import main
from vpt_tracker.store import make_engine


def test_init_creates_schema(db_url: str) -> None:
    result = CliRunner().invoke(main, ["--database", db_url, "init"])
    assert result.exit_code == 0, result.output
    assert "database ready" in result.output
    engine = make_engine(db_url)
    assert "papers" in inspect(engine).get_table_names()
    engine.dispose()
    again = CliRunner().invoke(main, ["--database", db_url, "init"])
    assert again.exit_code == 0


def test_unreachable_database_is_exit_2() -> None:
    result = CliRunner().invoke(main, ["--database", "postgresql://nobody@127.0.0.1:1/none", "init"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: cannot reach database")


def test_not_a_url_is_exit_2() -> None:
    result = CliRunner().invoke(main, ["--database", "::not a url::", "init"])
    assert result.exit_code == 2
    assert "not a database URL" in result.output
