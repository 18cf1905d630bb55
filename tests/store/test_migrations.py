"""The migrations in db/ build exactly the schema that the models describe."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, inspect, select, text, update

from vpt_tracker.store import transaction
from vpt_tracker.store.db import StoreError, make_engine, schema_transaction
from vpt_tracker.store.migrate import pending_model_changes, upgrade
from vpt_tracker.store.tables import Base, CatalogueRow, EntryRow, IdentityGenerationRow, PaperRow


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


# Rows of every table that points at papers, candidates or entries, written in SQL so that
# they fit the schema of revision 0005 whatever columns later revisions add.
_ROWS_AT_0005 = [
    "INSERT INTO runs (id, kind, started_at, outcome, counts, errors, health)"
    " VALUES (1, 'ingest', '2026-01-01 00:00:00', 'ok', '{}', '{}', '{}')",
    "INSERT INTO catalogues (id, name, source_text, source_sha256, imported_at)"
    " VALUES (1, 'c', 'readme', '0', '2026-01-01 00:00:00')",
    *(
        "INSERT INTO papers (id, title, title_key, first_author_key, abstract, authors, categories,"
        f" created_at, modified_at, arxiv_id) VALUES ({n}, 'paper {n}', 'paper {n}', '', 'abstract {n}',"
        f" '[\"A {n}\"]', '[]', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2401.0000{n}')"
        for n in (1, 2, 3)
    ),
    *(
        "INSERT INTO sightings (id, paper_id, source, source_id, payload_hash, payload, fetched_at, run_id)"
        f" VALUES ({n}, {n}, 'jsonl', 's{n}', 'h{n}', '{{}}', '2026-01-01 00:00:00', 1)"
        for n in (1, 2, 3)
    ),
    *(
        "INSERT INTO candidates (id, paper_id, catalogue_id, status, relevance, label_scores,"
        " proposed_labels, low_confidence, version, created_at, updated_at)"
        f" VALUES ({n}, {n}, 1, 'pending', 0.5, '{{}}', '[]', false, 1, '2026-01-01 00:00:00',"
        " '2026-01-01 00:00:00')"
        for n in (1, 2)
    ),
    "INSERT INTO decisions (id, candidate_id, reviewer, action, at, before, after, undone)"
    " VALUES (1, 2, 'r', 'defer', '2026-01-01 00:00:00', '{}', '{}', false)",
    *(
        "INSERT INTO entries (id, catalogue_id, paper_id, candidate_id, position, section_path, labels,"
        f" badges, title, title_key, state, extra) VALUES ({n}, 1, {n}, {n}, {n}, '[]', '[]', '[]',"
        f" 'paper {n}', 'paper {n}', 'imported', '{{}}')"
        for n in (1, 2)
    ),
    "INSERT INTO scoring_backlog (id, catalogue, paper_id, run_id, created_at)"
    " VALUES (1, 'c', 3, 1, '2026-01-01 00:00:00')",
]

_KEPT = {
    "papers": "SELECT id, title, arxiv_id FROM papers ORDER BY id",
    "sightings": "SELECT id, paper_id, run_id FROM sightings ORDER BY id",
    "candidates": "SELECT id, paper_id, catalogue_id FROM candidates ORDER BY id",
    "decisions": "SELECT id, candidate_id FROM decisions ORDER BY id",
    "entries": "SELECT id, paper_id, candidate_id FROM entries ORDER BY id",
    "scoring_backlog": "SELECT id, paper_id FROM scoring_backlog ORDER BY id",
}


def _add_rows_at_0005(engine: Engine) -> None:
    with engine.begin() as connection:
        for statement in _ROWS_AT_0005:
            connection.execute(text(statement))
        if engine.dialect.name == "postgresql":  # the rows above chose their ids themselves
            for table in ("papers", "candidates", "entries", "scoring_backlog"):
                connection.execute(text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))"))


def _foreign_keys(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    inspector = inspect(engine)
    return {
        table: sorted(
            (
                fk["name"] or "",
                *fk["constrained_columns"],
                fk["referred_table"],
                str(fk["options"].get("ondelete")),
            )
            for fk in inspector.get_foreign_keys(table)
        )
        for table in sorted(inspector.get_table_names())
    }


def test_ids_of_deleted_rows_are_never_given_again_after_the_upgrade(db_url: str) -> None:
    """0006: on SQLite, a merged-away paper's id (the highest) went to the next new paper, and
    everything that remembered it (a log, a digest, the saved identity index) then named
    another paper; the same for a merge's dropped candidate and a retracted entry. The
    rebuild of the tables keeps every row and every foreign key."""
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0005")
        _add_rows_at_0005(engine)
        with engine.connect() as connection:
            before = {table: connection.execute(text(query)).all() for table, query in _KEPT.items()}
        keys_before = _foreign_keys(engine)
        upgrade(engine)
        with engine.connect() as connection:
            assert {table: connection.execute(text(query)).all() for table, query in _KEPT.items()} == before
        assert {
            table: keys for table, keys in _foreign_keys(engine).items() if table in keys_before
        } == keys_before
        assert pending_model_changes(engine) == []
        with transaction(engine) as session:  # the foreign keys still act: a paper takes its sightings along
            session.execute(text("DELETE FROM sightings WHERE paper_id = 3"))
            session.execute(text("DELETE FROM papers WHERE id = 3"))
            assert session.execute(text("SELECT count(*) FROM scoring_backlog")).scalar() == 0
            session.execute(text("DELETE FROM candidates WHERE id = 2"))  # its decision goes with it
            assert session.execute(text("SELECT count(*) FROM decisions")).scalar() == 0
            assert session.execute(text("SELECT candidate_id FROM entries WHERE id = 2")).scalar() is None
            session.execute(text("DELETE FROM entries WHERE id = 2"))
        with transaction(engine) as session:
            paper = PaperRow(title="a later paper", title_key="a later paper")
            session.add(paper)
            session.flush()
            assert paper.id == 4  # not 3, the id of the deleted paper
            candidates, entries = Base.metadata.tables["candidates"], Base.metadata.tables["entries"]
            candidate = session.execute(
                insert(candidates).values(paper_id=paper.id, catalogue_id=1).returning(candidates.c.id)
            ).scalar_one()
            assert candidate == 3  # not 2
            entry = session.execute(
                insert(entries)
                .values(catalogue_id=1, position=3, title="a later paper", title_key="a later paper")
                .returning(entries.c.id)
            ).scalar_one()
            assert entry == 3  # not 2
    finally:
        engine.dispose()


def test_a_deleted_highest_id_is_not_given_again(engine: Engine) -> None:
    """The same on a store made at the head revision: the tables are AUTOINCREMENT there too."""
    with transaction(engine) as session:
        papers = [PaperRow(title=f"paper {n}", title_key=f"paper {n}") for n in range(3)]
        session.add_all(papers)
        session.flush()
        highest = papers[-1].id
        session.delete(papers[-1])
    with transaction(engine) as session:
        later = PaperRow(title="later", title_key="later")
        session.add(later)
        session.flush()
        assert later.id > highest


def test_an_upgrade_that_would_leave_a_broken_foreign_key_is_rolled_back(tmp_path: Path) -> None:
    """SQLite upgrades run with foreign-key actions off (a rebuilt table's drop must not
    cascade), so the keys are checked before the commit instead, and stay enforced after."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        upgrade(engine)
        with engine.connect() as connection:
            with (
                pytest.raises(StoreError, match="would break foreign keys"),
                schema_transaction(connection, write=True),
            ):
                connection.exec_driver_sql(
                    "INSERT INTO sightings (paper_id, source, source_id, payload_hash, payload, fetched_at)"
                    " VALUES (99, 'jsonl', 's', 'h', '{}', '2026-01-01 00:00:00')"
                )
            assert connection.exec_driver_sql("SELECT count(*) FROM sightings").scalar() == 0
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_titles_with_script_markers_are_keyed_again(db_url: str) -> None:
    """0008: stored keys from before super- and subscript markers folded away ("E^2VPT" was
    "e 2vpt") are folded again, in papers and in entries, so a record or an entry written
    "E2VPT: …" finds the paper; other titles, identifiers' underscores too, are left alone."""
    from vpt_tracker.ingest import ingest_records
    from vpt_tracker.models import RawRecord

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0007")
        e2vpt = "E^2VPT: An Effective and Efficient Approach for Visual Prompt Tuning"
        na2q = r"N$\text{A}^{\text{2}}$Q: Neural Attention Additive Model"
        recogs = "Compositional Generalization (in ReCOGS_pos)"  # an identifier's underscore
        old_keys = {
            e2vpt: "e 2vpt an effective and efficient approach for visual prompt tuning",
            na2q: "n a 2q neural attention additive model",
            recogs: "compositional generalization in recogs pos",
            "Plain": "plain",
        }
        with transaction(engine) as session:
            cat = CatalogueRow(name="c", source_text="", source_sha256="0")
            session.add(cat)
            session.flush()
            session.add_all(
                [PaperRow(title=t, title_key=k, venue="ICCV", year=2023) for t, k in old_keys.items()]
            )
            session.add_all(
                [
                    EntryRow(catalogue_id=cat.id, position=n, title=t, title_key=k)
                    for n, (t, k) in enumerate(old_keys.items())
                ]
            )
        upgrade(engine)
        with transaction(engine) as session:
            papers = {row.title: row.title_key for row in session.query(PaperRow)}
            entries = {row.title: row.title_key for row in session.query(EntryRow)}
            generation = session.scalar(select(IdentityGenerationRow.generation))
        assert generation == 1  # an identity index built before is used no more
        assert (
            papers
            == entries
            == {
                e2vpt: "e2vpt an effective and efficient approach for visual prompt tuning",
                na2q: "na2q neural attention additive model",
                recogs: "compositional generalization in recogs pos",
                "Plain": "plain",
            }
        )
        # The same title at another venue is the paper (an identical title merges whatever the
        # venues say); under its old key it was 99 % alike, and published apart.
        journal = RawRecord(source="x", source_id="1", title=e2vpt.replace("^", ""), venue="TPAMI", year=2025)
        assert ingest_records(engine, [journal]).merged == 1
    finally:
        engine.dispose()


def test_sightings_named_by_an_old_title_key_are_named_again(db_url: str) -> None:
    """0009: an entry's own sighting ("<catalogue>:<title key>") and a dump's record without
    an arXiv id ("<title key>|<first author key>") are named by the folded title. 0008 folded
    the papers' keys again, not these ids, so a rerun after the upgrade named the record the new
    way and stored it a second time. 0009 names them again (id, payload and hash); the second
    sighting of the same paper goes, the same record on another paper (a split) stays."""
    from dataclasses import replace

    from vpt_tracker.dumps import corpus_record
    from vpt_tracker.enrich import _Entry, _entry_record
    from vpt_tracker.ingest import ingest_records
    from vpt_tracker.models import RawRecord
    from vpt_tracker.normalize import title_key
    from vpt_tracker.store.tables import SightingRow

    e2vpt = "E^2VPT: An Effective and Efficient Approach for Visual Prompt Tuning"
    smart = r"SmartPrompt v$_3$: Visual Prompt Tuning for Frozen Backbones"
    dump_line = {"title": e2vpt, "authors": ["Cheng Han", "Qifan Wang"], "summary": "E."}
    from_dump = corpus_record(dump_line, "d:1")
    entry = _Entry(1, smart, title_key(smart), None, "ICLR 2025", 2025, None, None)
    from_list = _entry_record("vpt", entry, [])
    plain = corpus_record({"title": "Plain Prompts", "authors": ["Ann Bee"], "summary": "P."}, "d:2")
    with_id = corpus_record({"id": "2401.00001", "title": "Prompt^2 Pools", "summary": "I."}, "d:3")
    assert (from_dump.source_id, from_list.source_id) == (
        "e2vpt an effective and efficient approach for visual prompt tuning|han",
        "vpt:smartprompt v3 visual prompt tuning for frozen backbones",
    )
    # The same records as they were named before 0008 (and stored, payload and hash with it).
    old_dump = replace(
        from_dump, source_id="e 2vpt an effective and efficient approach for visual prompt tuning|han"
    )
    old_list = replace(from_list, source_id="vpt:smartprompt v 3 visual prompt tuning for frozen backbones")

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0008")
        assert ingest_records(engine, [old_dump, old_list, plain, with_id]).new_sightings == 4
        # Reruns after 0008 stored both again, each on the paper of its first sighting.
        assert (ingest_records(engine, [from_dump, from_list]).merged, _sightings_of(engine)) == (2, 6)
        with transaction(engine) as session:  # a split moved the list's second sighting apart
            other = PaperRow(title=smart, title_key=title_key(smart))
            session.add(other)
            session.flush()
            second = update(SightingRow).where(SightingRow.source_id == from_list.source_id)
            session.execute(second.values(paper_id=other.id))
            split_off = other.id

        upgrade(engine)

        with transaction(engine) as session:
            rows = session.scalars(select(SightingRow).order_by(SightingRow.id)).all()
            named = [(row.source_id, row.paper_id == split_off) for row in rows]
            for row in rows:  # each payload names its sighting, and its hash is the record's
                assert row.payload["source_id"] == row.source_id
                assert RawRecord.from_json(row.payload).payload_hash == row.payload_hash
        assert named == [
            (from_dump.source_id, False),  # the first sighting, named again; its second went
            (old_list.source_id, False),  # on another paper than the one named today: kept as it was
            (plain.source_id, False),
            (with_id.source_id, False),
            (from_list.source_id, True),
        ]
        again = ingest_records(engine, [from_dump, from_list, plain, with_id])
        assert (again.new_sightings, again.duplicate_sightings) == (0, 4)
    finally:
        engine.dispose()


def test_titles_with_ell_or_a_digit_subscript_are_keyed_again(db_url: str) -> None:
    """0012: `\\ell` folds to "l" (as "ℓ" does), `_` before one digit is a subscript ("H_2O"
    is "h2o") and a "+" after a word is a word ("EvTexture++"). Keys folded the old way, of
    papers, entries and the sightings named by a title, are folded again, so the "ℓp" spelling
    and a rerun of the same dump find them."""
    from dataclasses import replace

    from vpt_tracker.dumps import corpus_record
    from vpt_tracker.ingest import ingest_records
    from vpt_tracker.store.tables import SightingRow

    ell = r"Sharper Bounds for $\ell_p$ Sensitivity Sampling"  # ICML 2023, as its index writes it
    h2o = "H_2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models"
    plus = "EvTexture++: Event-Driven Texture Enhancement"
    old_keys = {
        ell: "sharper bounds for p sensitivity sampling",
        h2o: "h 2o heavy hitter oracle for efficient generative inference of large language models",
        plus: "evtexture event driven texture enhancement",
        "results_2023": "results 2023",  # an identifier's underscore: as it was
    }
    dump = corpus_record({"title": h2o, "authors": ["Zhenyu Zhang"], "summary": "H."}, "d:1")
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0011")
        with transaction(engine) as session:
            cat = CatalogueRow(name="c", source_text="", source_sha256="0")
            session.add(cat)
            session.flush()
            session.add_all(
                [PaperRow(title=t, title_key=k, venue="ICML", year=2023) for t, k in old_keys.items()]
            )
            session.add_all(
                [
                    EntryRow(catalogue_id=cat.id, position=n, title=t, title_key=k)
                    for n, (t, k) in enumerate(old_keys.items())
                ]
            )
        # The dump's record as 0010 named it ("<title key>|<first author key>").
        old_dump = replace(dump, source_id=f"{old_keys[h2o]}|zhang")
        assert ingest_records(engine, [old_dump]).new_sightings == 1

        upgrade(engine)

        with transaction(engine) as session:
            papers = {(row.title, row.title_key) for row in session.query(PaperRow)}
            entries = {row.title: row.title_key for row in session.query(EntryRow)}
            generation = session.scalar(select(IdentityGenerationRow.generation))
            named = session.scalars(select(SightingRow.source_id)).all()
        assert generation is not None and generation >= 2  # the ingestion's, then the re-keying's
        assert entries == {
            ell: "sharper bounds for lp sensitivity sampling",
            h2o: "h2o heavy hitter oracle for efficient generative inference of large language models",
            plus: "evtexture plus plus event driven texture enhancement",
            "results_2023": "results 2023",
        }
        assert papers == set(entries.items())  # the dump's record merged into the paper "H_2O: …" or not
        assert named == [dump.source_id] == [f"{entries[h2o]}|zhang"]
        again = ingest_records(engine, [dump])
        assert (again.new_sightings, again.duplicate_sightings) == (0, 1)
    finally:
        engine.dispose()


def _sightings_of(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM sightings")).scalar_one())


def test_the_scoring_backlog_keeps_scored_rows_after_the_upgrade(db_url: str) -> None:
    """0010: a row stored before is still owed (`scored_at` NULL); a pair scored may be owed
    again beside its scored row, while the same pair is owed at most once."""
    from sqlalchemy.exc import IntegrityError

    from vpt_tracker.pipeline import scoring_backlog

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0009")
        _add_rows_at_0005(engine)
        upgrade(engine)
        assert pending_model_changes(engine) == []
        assert scoring_backlog(engine, ["c"]) == {"c": {3}}
        owe = (
            "INSERT INTO scoring_backlog (catalogue, paper_id, created_at)"
            " VALUES ('c', 3, '2026-02-01 00:00:00')"
        )
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text(owe))
        with engine.begin() as connection:
            connection.execute(text("UPDATE scoring_backlog SET scored_at = '2026-01-02 00:00:00'"))
            connection.execute(text(owe))
            rows = connection.execute(
                text("SELECT paper_id, scored_at IS NULL FROM scoring_backlog ORDER BY id")
            )
            assert [(paper, bool(owed)) for paper, owed in rows] == [(3, False), (3, True)]
    finally:
        engine.dispose()


def test_publications_and_venue_upgrades_are_backfilled_from_what_the_store_tells(db_url: str) -> None:
    """0011: a candidate with `published_at` was published then; a paper with
    `venue_upgraded_at` was upgraded then, in the lists that hold it and show no venue for it
    (paper 2's imported entry gives `CVPR 2026`: no news there); paper 3 is in no list."""
    from datetime import UTC, datetime

    from vpt_tracker.store.tables import PublicationRow, VenueUpgradeRow

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0010")
        _add_rows_at_0005(engine)
        at = "2026-11-18 07:00:00"
        with engine.begin() as connection:
            connection.execute(
                text(f"UPDATE candidates SET status = 'published', published_at = '{at}' WHERE id = 2")
            )
            connection.execute(
                text(
                    "UPDATE papers SET previous_venue = 'arXiv', venue = 'CVPR', year = 2026,"
                    f" venue_upgraded_at = '{at}'"
                )
            )
            connection.execute(
                text("UPDATE entries SET venue = CASE id WHEN 1 THEN 'arXiv' ELSE 'CVPR 2026' END")
            )
        upgrade(engine)
        assert pending_model_changes(engine) == []
        moment = datetime(2026, 11, 18, 7, tzinfo=UTC)
        with transaction(engine) as session:
            publications = session.scalars(select(PublicationRow)).all()
            assert [(p.catalogue_id, p.candidate_id, p.at, p.pull_request) for p in publications] == [
                (1, 2, moment, None)
            ]
            upgrades = session.scalars(select(VenueUpgradeRow).order_by(VenueUpgradeRow.paper_id)).all()
            assert [(u.paper_id, u.at, u.previous_venue, u.venue, u.year, u.listed_in) for u in upgrades] == [
                (1, moment, "arXiv", "CVPR", 2026, [1]),
                (2, moment, "arXiv", "CVPR", 2026, []),
                (3, moment, "arXiv", "CVPR", 2026, []),
            ]
    finally:
        engine.dispose()


def _autoincrement_tables(engine: Engine) -> set[str]:
    """The SQLite tables declared AUTOINCREMENT (they remember every id given; the others
    give a deleted highest id again)."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        return {name for name, sql in rows if "AUTOINCREMENT" in sql.upper()}


def test_the_tables_that_never_reuse_ids_are_those_the_models_declare(tmp_path: Path) -> None:
    """Autogenerate does not compare `sqlite_autoincrement`, so `pending_model_changes` cannot
    tell a model that declares it from a store made without it (or the other way round)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        upgrade(engine)
        declared = {
            name for name, table in Base.metadata.tables.items() if table.kwargs.get("sqlite_autoincrement")
        }
        assert {"papers", "candidates", "entries", "catalogues"} <= declared
        assert _autoincrement_tables(engine) == declared
    finally:
        engine.dispose()


def test_a_removed_catalogues_id_is_never_given_again_after_the_upgrade(db_url: str) -> None:
    """0013: on SQLite, a removed catalogue's id (the highest) went to the next catalogue
    imported, and a reviewer's open screen, a log line or `venue_upgrades.listed_in` then
    named it. The rebuild of `catalogues` keeps its rows, ids and unique name, and the
    foreign keys that point at it; on PostgreSQL nothing changes."""
    from sqlalchemy.exc import IntegrityError

    from vpt_tracker.catalogue.removal import remove_catalogue

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0012")
        _add_rows_at_0005(engine)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO catalogues (id, name, source_text, source_sha256, imported_at)"
                    " VALUES (2, 'gone', 'readme', '0', '2026-01-02 00:00:00')"
                )
            )
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT setval('catalogues_id_seq', 2)"))
        queries = {
            **_KEPT,
            "catalogues": "SELECT id, name, source_text, imported_at FROM catalogues ORDER BY id",
        }
        with engine.connect() as connection:
            before = {table: connection.execute(text(query)).all() for table, query in queries.items()}
        keys_before = _foreign_keys(engine)
        indexes_before = {table: inspect(engine).get_unique_constraints(table) for table in ("catalogues",)}
        upgrade(engine)
        with engine.connect() as connection:
            assert {
                table: connection.execute(text(query)).all() for table, query in queries.items()
            } == before
        assert _foreign_keys(engine) == keys_before
        assert {
            table: inspect(engine).get_unique_constraints(table) for table in ("catalogues",)
        } == indexes_before
        assert pending_model_changes(engine) == []
        if engine.dialect.name == "sqlite":
            assert "catalogues" in _autoincrement_tables(engine)
        with pytest.raises(IntegrityError), engine.begin() as connection:  # the name is still unique
            connection.execute(
                text(
                    "INSERT INTO catalogues (name, source_text, source_sha256, imported_at)"
                    " VALUES ('c', '', '0', '2026-01-03 00:00:00')"
                )
            )
        with transaction(engine) as session:  # the foreign keys still act: a catalogue takes its entries
            session.execute(text("DELETE FROM decisions"))
            session.execute(text("DELETE FROM candidates"))
            session.execute(text("DELETE FROM catalogues WHERE id = 1"))
            assert session.execute(text("SELECT count(*) FROM entries")).scalar() == 0
        remove_catalogue(engine, "gone")
        with transaction(engine) as session:
            catalogue = CatalogueRow(name="new", source_text="", source_sha256="0")
            session.add(catalogue)
            session.flush()
            assert catalogue.id > 2  # not 2, the id of the removed catalogue (nor 1)
    finally:
        engine.dispose()
