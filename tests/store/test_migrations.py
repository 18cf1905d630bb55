"""The migrations in db/ build exactly the schema that the models describe."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

from vpt_tracker.store.migrate import pending_model_changes, upgrade
from vpt_tracker.store.tables import Base


def test_migrations_create_every_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    core = {"papers", "sightings", "catalogues", "entries", "candidates", "decisions", "cursors", "runs"}
    assert core <= tables


def test_models_and_migrations_agree(engine: Engine) -> None:
    assert pending_model_changes(engine) == []


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    assert pending_model_changes(engine) == []
