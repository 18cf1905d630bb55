"""scoring_backlog

A catalogue whose scoring failed in a run (its model missing or unreadable) owes a score to
the papers that run stored. Each is a row here; the next run that can score the catalogue
scores them with its own papers and deletes the rows in the same transaction. Before, those
papers were never scored for that catalogue unless `classify enqueue` was run by hand.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import vpt_tracker.store.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scoring_backlog",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("catalogue", sa.String(length=128), nullable=False),
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", vpt_tracker.store.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.id"], name=op.f("fk_scoring_backlog_paper_id_papers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_scoring_backlog_run_id_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_backlog")),
        sa.UniqueConstraint("catalogue", "paper_id", name=op.f("uq_scoring_backlog_catalogue_paper_id")),
    )


def downgrade() -> None:
    op.drop_table("scoring_backlog")
