"""index papers.modified_at

The identity index cache (ingest._IndexCache) checks the store's state, max(modified_at)
among it, before and after every page; without an index that is a scan of every paper.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_papers_modified_at"), "papers", ["modified_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_papers_modified_at"), table_name="papers")
