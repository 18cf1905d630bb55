"""scoring_backlog keeps a scored row, stamped scored_at

A row was deleted when its paper was scored, so a digest built after its week could not
count a paper owed at the week's end and scored since. The row now stays with the time it
was scored (`scored_at`; NULL: still owed). A paper scored may be owed again (a later failed
scoring), so the unique (catalogue, paper_id) holds only among the rows still owed: a
partial unique index, on SQLite and PostgreSQL alike. The rows stored before are all owed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OWED = "scored_at IS NULL"


def upgrade() -> None:
    # Batch mode: SQLite drops a unique constraint only by rebuilding the table.
    with op.batch_alter_table("scoring_backlog") as batch:
        batch.add_column(sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint("uq_scoring_backlog_catalogue_paper_id", type_="unique")
    op.create_index(
        "uq_scoring_backlog_owed",
        "scoring_backlog",
        ["catalogue", "paper_id"],
        unique=True,
        sqlite_where=sa.text(OWED),
        postgresql_where=sa.text(OWED),
    )


def downgrade() -> None:
    op.drop_index("uq_scoring_backlog_owed", table_name="scoring_backlog")
    op.execute(f"DELETE FROM scoring_backlog WHERE NOT ({OWED})")
    with op.batch_alter_table("scoring_backlog") as batch:
        batch.create_unique_constraint("uq_scoring_backlog_catalogue_paper_id", ["catalogue", "paper_id"])
        batch.drop_column("scored_at")
