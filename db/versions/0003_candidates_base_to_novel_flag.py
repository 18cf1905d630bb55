"""candidates.base_to_novel_flag

The base-to-novel flag is the probability at or above the model's own threshold (the
model card's, 0.11 for the shipped generalizable-vlm model), stored with the scores. The
review app and `review list` marked p >= 0.5 instead, which disagreed with the model.
Candidates scored before this revision get what those views showed them: p >= 0.5.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("candidates") as batch:
        batch.add_column(sa.Column("base_to_novel_flag", sa.Boolean(), nullable=True))
    candidates = sa.table(
        "candidates", sa.column("base_to_novel", sa.Float), sa.column("base_to_novel_flag", sa.Boolean)
    )
    op.execute(
        candidates.update()
        .where(candidates.c.base_to_novel.is_not(None))
        .values(base_to_novel_flag=candidates.c.base_to_novel >= 0.5)
    )


def downgrade() -> None:
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("base_to_novel_flag")
