"""Alembic environment: the engine comes from `vpt_tracker.store.migrate` (or -x url=...)."""

from __future__ import annotations

from alembic import context
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from vpt_tracker.store.db import schema_transaction
from vpt_tracker.store.tables import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
        if not url:
            raise SystemExit("give the database with -x url=... ")
        engine = create_engine(url)
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
        connection.rollback()  # the check's read, before the upgrade's own transaction
        # One transaction for the whole upgrade, on SQLite too (see `schema_transaction`).
        with schema_transaction(connection, write=current != set(context.script.get_heads())):
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()


run_migrations_online()
