"""publications and venue_upgrades: a dated record of each publish and each venue upgrade

The digest of a past week read who was published in it from `candidates.published_at` and
which papers were upgraded from `papers.venue_upgraded_at`, for the papers of the list as it
is at the build. Both hold the last time only: `published_at` is cleared when the entry
leaves the list (upstream dropped its section) and a paper upgraded twice (a split took its
venue sighting, a later record upgraded it again) keeps the second upgrade. Each publish is
now a `publications` row and each upgrade a `venue_upgrades` row, with the catalogues whose
list held the paper then (`listed_in`).

Backfilled from what the store still tells: a candidate with `published_at` gets a
publication at that time (its pull request is not known: NULL); a paper with
`venue_upgraded_at` gets an upgrade at that time from `previous_venue` to its venue, listed in
the catalogues whose entries hold the paper now and do not show a venue for it (an imported
entry with one). Not known, so not backfilled: publications whose `published_at` was cleared,
the earlier publish of a paper published twice, an upgrade a later one overwrote, and which
lists held a paper at its upgrade (taken as of this upgrade).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import vpt_tracker.store.tables
from vpt_tracker.normalize import is_preprint_venue

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "publications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("catalogue_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("at", vpt_tracker.store.tables.UTCDateTime(), nullable=False),
        sa.Column("pull_request", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_publications_candidate_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["catalogue_id"],
            ["catalogues.id"],
            name=op.f("fk_publications_catalogue_id_catalogues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publications")),
    )
    op.create_index("ix_publications_catalogue_id_at", "publications", ["catalogue_id", "at"], unique=False)
    op.create_index(op.f("ix_publications_candidate_id"), "publications", ["candidate_id"], unique=False)
    op.create_table(
        "venue_upgrades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("at", vpt_tracker.store.tables.UTCDateTime(), nullable=False),
        sa.Column("previous_venue", sa.String(length=128), nullable=True),
        sa.Column("venue", sa.String(length=128), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("listed_in", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.id"], name=op.f("fk_venue_upgrades_paper_id_papers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_venue_upgrades")),
    )
    op.create_index("ix_venue_upgrades_at", "venue_upgrades", ["at"], unique=False)
    op.create_index(op.f("ix_venue_upgrades_paper_id"), "venue_upgrades", ["paper_id"], unique=False)

    op.execute(
        "INSERT INTO publications (catalogue_id, candidate_id, at)"
        " SELECT catalogue_id, id, published_at FROM candidates WHERE published_at IS NOT NULL"
    )
    op.execute(
        "INSERT INTO venue_upgrades (paper_id, at, previous_venue, venue, year, listed_in)"
        " SELECT id, venue_upgraded_at, previous_venue, venue, year, '[]' FROM papers"
        " WHERE venue_upgraded_at IS NOT NULL"
    )
    connection = op.get_bind()
    listed: dict[int, set[int]] = {}
    shown: set[tuple[int, int]] = set()  # (paper, catalogue): an imported entry gives its venue
    entries = connection.execute(
        sa.text(
            "SELECT e.paper_id, e.catalogue_id, e.state, e.venue FROM entries e"
            " JOIN venue_upgrades u ON u.paper_id = e.paper_id"
        )
    )
    for paper_id, catalogue_id, state, venue in entries:
        listed.setdefault(paper_id, set()).add(catalogue_id)
        if state == "imported" and not is_preprint_venue(venue):
            shown.add((paper_id, catalogue_id))
    upgrades = sa.table("venue_upgrades", sa.column("paper_id", sa.Integer), sa.column("listed_in", sa.JSON))
    for paper_id, catalogues in sorted(listed.items()):
        news = sorted(c for c in catalogues if (paper_id, c) not in shown)
        if news:
            connection.execute(
                sa.update(upgrades).where(upgrades.c.paper_id == paper_id).values(listed_in=news)
            )


def downgrade() -> None:
    op.drop_index(op.f("ix_venue_upgrades_paper_id"), table_name="venue_upgrades")
    op.drop_index("ix_venue_upgrades_at", table_name="venue_upgrades")
    op.drop_table("venue_upgrades")
    op.drop_index(op.f("ix_publications_candidate_id"), table_name="publications")
    op.drop_index("ix_publications_catalogue_id_at", table_name="publications")
    op.drop_table("publications")
