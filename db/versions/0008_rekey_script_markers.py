"""re-key titles with super- and subscript markers or LaTeX commands

`normalize.fold_text` now folds super- and subscript markers away, leaving the script in its
word: "E^2VPT", "E$^{2}$VPT" and "E2VPT" all fold to "e2vpt" (they were "e 2vpt" and "e2vpt",
so a list entry "E2VPT: …" did not find the paper "E^2VPT: …"), and a LaTeX command before a
group is the group's letters ("N$\\text{A}^{\\text{2}}$Q" is "na2q", "Demoir$\\acute{e}$ing"
"demoireing"). Stored title keys of such titles were folded the old way, so a new sighting or
an entry of the same title would no longer find them. Only titles with `^`, `_` or `\\` can
change; they are folded again with the code of this revision. New title keys of papers are an
identity change: the identity generation is raised, so an identity index kept anywhere is
rebuilt (as `ingest._SNAPSHOT_FORMAT` 7 makes a saved one of the old folding be).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vpt_tracker.normalize import title_key

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

KEY_LENGTH = 512  # papers.title_key and entries.title_key are String(512)
MARKERS = ("^", "_", "\\")  # a title without any of them folds as it did


def upgrade() -> None:
    connection = op.get_bind()
    for name in ("papers", "entries"):
        table = sa.table(
            name, sa.column("id", sa.Integer), sa.column("title", sa.Text), sa.column("title_key", sa.String)
        )
        marked = sa.or_(*(table.c.title.contains(marker, autoescape=True) for marker in MARKERS))
        rows = connection.execute(sa.select(table.c.id, table.c.title, table.c.title_key).where(marked))
        changed = [
            {"row_id": row_id, "new_key": title_key(title)[:KEY_LENGTH]}
            for row_id, title, key in rows
            if title and title_key(title)[:KEY_LENGTH] != key
        ]
        if changed:
            statement = table.update().where(table.c.id == sa.bindparam("row_id"))
            connection.execute(statement.values(title_key=sa.bindparam("new_key")), changed)
            if name == "papers":
                generation = sa.table(
                    "identity_generation", sa.column("id", sa.Integer), sa.column("generation", sa.BigInteger)
                )
                raised = generation.c.generation + 1
                connection.execute(generation.update().where(generation.c.id == 1).values(generation=raised))


def downgrade() -> None:
    """Nothing to undo: the old keys came from the old folding, which this code no longer has."""
