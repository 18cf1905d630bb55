"""identity_generation

A counter that every write changing the papers' identity raises in its own transaction. The
saved identity index was trusted while the papers' count, highest id and latest
modification time were those it was saved with; that time comes from the writer's clock,
so a `papers rebuild` from a host whose clock is behind changed none of the three and the
other hosts went on with an index from before the repair. The counter starts at 0 in its
one row; an index saved before this revision no longer matches and is rebuilt once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "identity_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_generation")),
    )
    op.bulk_insert(table, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    op.drop_table("identity_generation")
