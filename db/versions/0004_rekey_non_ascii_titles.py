"""re-key titles that are not plain ASCII

`normalize.fold_text` now decomposes before it names Greek letters ("ά", and the symbol
forms ϵ ϕ µ that LaTeX renders, fold to "alpha", "epsilon", "phi", "mu") and spells the
Latin letters that have no decomposition (ø ł đ ß æ œ þ) in ASCII. Stored title keys of
such titles were folded the old way ("ϵ-VAE" was "vae", "Søgaard" "s gaard"), so a new
sighting of the same paper would no longer find it by its title. Only titles with a
non-ASCII character can change; they are folded again with the code of this revision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vpt_tracker.normalize import title_key

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

KEY_LENGTH = 512  # papers.title_key and entries.title_key are String(512)


def upgrade() -> None:
    connection = op.get_bind()
    for name in ("papers", "entries"):
        table = sa.table(
            name, sa.column("id", sa.Integer), sa.column("title", sa.Text), sa.column("title_key", sa.String)
        )
        rows = connection.execute(sa.select(table.c.id, table.c.title, table.c.title_key))
        changed = [
            {"row_id": row_id, "new_key": title_key(title)[:KEY_LENGTH]}
            for row_id, title, key in rows
            if title and not title.isascii() and title_key(title)[:KEY_LENGTH] != key
        ]
        if changed:
            statement = table.update().where(table.c.id == sa.bindparam("row_id"))
            connection.execute(statement.values(title_key=sa.bindparam("new_key")), changed)


def downgrade() -> None:
    """Nothing to undo: the old keys came from the old folding, which this code no longer has."""
