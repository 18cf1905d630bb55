"""catalogues never give a removed catalogue's id again

0006 made papers, candidates and entries AUTOINCREMENT on SQLite; `catalogues` was left
as it was, since no catalogue was ever deleted. `catalogue remove` now deletes one, and
SQLite hands out the highest rowid + 1: the next catalogue imported got the removed one's
id, and whatever remembered it (a reviewer's open screen, which holds the catalogue's id,
a log line, `venue_upgrades.listed_in`) then named another catalogue. The table is rebuilt
as 0006 rebuilt its three (batch mode: copy, drop, rename, with foreign-key actions off and
every foreign key checked before the commit, all in the upgrade's one transaction), keeping
every row, id, constraint and index, and the foreign keys of the tables that point at it.
PostgreSQL's sequences never go back: nothing to do there.

A catalogue removed before this upgrade, while its id was the highest, leaves that id to be
given once more.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 19:42:15
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = ("catalogues",)


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
