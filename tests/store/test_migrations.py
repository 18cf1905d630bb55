"""The migrations in db/ build exactly the schema that the models describe."""

from __future__ import annotations

from sqlalchemy import Engine, insert, inspect, text

from vpt_tracker.store import transaction
from vpt_tracker.store.db import make_engine
from vpt_tracker.store.migrate import pending_model_changes, upgrade
from vpt_tracker.store.tables import Base, CatalogueRow, PaperRow


def test_migrations_create_every_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    core = {"papers", "sightings", "catalogues", "entries", "candidates", "decisions", "cursors", "runs"}
    assert core <= tables


def test_models_and_migrations_agree(engine: Engine) -> None:
    assert pending_model_changes(engine) == []


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    assert pending_model_changes(engine) == []


def test_candidates_scored_before_the_flag_keep_the_mark_they_had(db_url: str) -> None:
    """0003 stores the base-to-novel flag; older candidates get what the views showed (p >= 0.5)."""
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0002")
        with transaction(engine) as session:
            cat = CatalogueRow(name="c", source_text="", source_sha256="0")
            papers = [PaperRow(title=f"paper {n}", title_key=f"paper {n}") for n in range(3)]
            session.add_all([cat, *papers])
            session.flush()
            # Core, not the ORM: the ORM would write the column that 0002 does not have yet.
            session.execute(
                insert(Base.metadata.tables["candidates"]),
                [
                    {"paper_id": paper.id, "catalogue_id": cat.id, "base_to_novel": probability}
                    for paper, probability in zip(papers, (0.7, 0.3, None), strict=True)
                ],
            )
            ids = [paper.id for paper in papers]
        upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT paper_id, base_to_novel_flag FROM candidates")).all()
            flags: dict[int, bool | None] = {row[0]: row[1] for row in rows}
        assert [None if flags[i] is None else bool(flags[i]) for i in ids] == [True, False, None]
    finally:
        engine.dispose()


def test_titles_folded_the_old_way_are_keyed_again(db_url: str) -> None:
    """0004: a stored key from the old folding ("ϵ-VAE" was "vae") is folded again, so a new
    sighting of the paper finds it by its title; ASCII titles are left alone."""
    from vpt_tracker.ingest import ingest_records
    from vpt_tracker.models import RawRecord

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0003")
        old_keys = {
            "ϵ-VAE: Denoising as Visual Decoding": "vae denoising as visual decoding",
            "Plain": "plain",
        }
        with transaction(engine) as session:
            session.add_all([PaperRow(title=title, title_key=key) for title, key in old_keys.items()])
        upgrade(engine)
        with transaction(engine) as session:
            keys = {row.title: row.title_key for row in session.query(PaperRow)}
        assert keys == {
            "ϵ-VAE: Denoising as Visual Decoding": "epsilon vae denoising as visual decoding",
            "Plain": "plain",
        }
        venue = RawRecord(
            source="x",
            source_id="1",
            title=r"$\epsilon$-VAE: Denoising as Visual Decoding",
            venue="ICML",
            year=2025,
        )
        assert ingest_records(engine, [venue]).merged == 1
    finally:
        engine.dispose()
