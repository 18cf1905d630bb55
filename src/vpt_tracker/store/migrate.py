"""Alembic, driven from code, so that `vpt-tracker init` needs no alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from vpt_tracker.bundled import bundled
from vpt_tracker.store.db import StoreError, safe_url
from vpt_tracker.store.tables import Base


def migrations_dir() -> Path:
    """`db/` in a source checkout, or the copy that the wheel carries as `vpt_tracker/_db`."""
    candidate = bundled("db")
    if (candidate / "env.py").exists():
        return candidate
    raise FileNotFoundError("the migrations folder db/ is missing from this installation")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision`.

    A database whose schema revision this installation does not know was migrated by a
    newer vpt-tracker: it is refused with `StoreError` (one line, exit 2) and left as it is.
    Alembic said "Can't locate revision" in a traceback, from every command.
    """
    config = alembic_config(engine)
    known = ScriptDirectory.from_config(config)
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    for stored in current:
        if stored not in {script.revision for script in known.walk_revisions()}:
            raise StoreError(
                f"the database {safe_url(engine)} has schema revision "
                f"{stored}, newer than this vpt-tracker knows (up to {known.get_current_head()}): "
                "upgrade vpt-tracker, or use another database"
            )
    command.upgrade(config, revision)


def pending_model_changes(engine: Engine) -> list[object]:
    """What the models have that the migrated database has not (empty when they agree)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))
