"""papers, candidates and entries never give a deleted row's id again

SQLite hands out the highest rowid + 1, so once the row with the highest id was deleted (a
paper merged away by `papers merge`, the candidate a merge drops, a retracted entry) the
next new row got its id, and whatever remembered the old id (a log line, a digest, an
exported JSON, a pull request, the saved identity index, a reviewer's open screen) then
named another row. AUTOINCREMENT makes SQLite remember the highest id ever given; it can
only be declared when a table is created, so the three tables are rebuilt (batch mode:
copy, drop, rename; `env.py` runs an upgrade with foreign-key actions off, so dropping the
old table cascades into nothing, and checks every foreign key before the commit).
PostgreSQL's sequences never go back: nothing to do there.

An id deleted before this upgrade and after the table's last insert may still be given once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 09:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("papers", "candidates", "entries")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TABLES:
        with op.batch_alter_table(name, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TABLES:
        with op.batch_alter_table(name, recreate="always", table_kwargs={"sqlite_autoincrement": False}):
            pass
