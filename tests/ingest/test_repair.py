"""Identity repair (`papers split`, `papers merge`, `papers check`), on SQLite and PostgreSQL.

Wrong merges are made the way an earlier version made them: its fuzzy match did not compare
the numbers of two titles, so "… v2" and "… v3" became one paper. The tests replay that
rule (`old_rule`), then repair the store through the command line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rapidfuzz import fuzz
from sqlalchemy import Engine, delete, func, select

from vpt_tracker import ingest
from vpt_tracker.cli import main
from vpt_tracker.digest import build_digest
from vpt_tracker.digest.build import Week
from vpt_tracker.ingest import forget_indexes, ingest_records, keep_index_between_runs, save_index
from vpt_tracker.models import RawRecord
from vpt_tracker.normalize import title_key
from vpt_tracker.store import make_engine, transaction
from vpt_tracker.store.migrate import upgrade
from vpt_tracker.store.tables import (
    CandidateRow,
    CatalogueRow,
    DecisionRow,
    EntryRow,
    PaperRow,
    PublicationRow,
    ScoringBacklogRow,
    SightingRow,
    VenueUpgradeRow,
)

V2 = RawRecord(
    source="arxiv_api",
    source_id="2403.01111",
    title="SmartPrompt v2: Visual Prompt Tuning for Frozen Backbones",
    abstract="Version two of SmartPrompt tunes a few visual prompts.",
    authors=("Ana Lopez", "Bo Chen"),
    arxiv_id="2403.01111",
    published=datetime(2024, 3, 2, tzinfo=UTC),
)
# An earlier version merged these into V2: the titles are 98 % alike, only the number differs.
V3 = RawRecord(
    source="openreview",
    source_id="or-v3",
    title="SmartPrompt v3: Visual Prompt Tuning for Frozen Backbones",
    abstract="Version three adds prompt pruning.",
    authors=("Ana Lopez", "Bo Chen"),
    openreview_id="AbCdEfGh12",
    venue="ICLR 2025",
    year=2025,
)
V2_AT_CVPR = RawRecord(
    source="cvf",
    source_id="cvpr-v2",
    title="SmartPrompt v2: Visual Prompt Tuning for Frozen Backbones",
    authors=("Ana Lopez", "Bo Chen"),
    cvf_url="https://openaccess.thecvf.com/content/CVPR2024/html/Lopez_SmartPrompt_CVPR_2024_paper.html",
    venue="CVPR 2024",
    year=2024,
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No developer config leaks in; the data dir (and its index cache) is the test's."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VPT_CONFIG", raising=False)
    monkeypatch.delenv("VPT_DATABASE_URL", raising=False)
    monkeypatch.setenv("VPT_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "vpt-tracker.toml").write_text(
        '[[catalogues]]\nname = "vpt"\n\n[[catalogues]]\nname = "vlm"\n'
    )
    keep_index_between_runs(None)
    forget_indexes()
    yield tmp_path / "data"
    keep_index_between_runs(None)
    forget_indexes()


def run(db_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--database", db_url, *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def run_json(db_url: str, *args: str) -> Any:
    code, out, err = run(db_url, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def load(engine: Engine, *records: RawRecord, at: datetime | None = None) -> list[int]:
    """Ingest records one by one (each a batch of its own, as separate runs store them)."""
    ids = []
    for record in records:
        ingest_records(engine, [record], now=(lambda: at) if at else ingest._utcnow)
        with transaction(engine) as session:
            ids.append(
                session.scalars(
                    select(SightingRow.paper_id).where(SightingRow.source_id == record.source_id)
                ).one()
            )
    return ids


def sighting_id(engine: Engine, source_id: str) -> int:
    with transaction(engine) as session:
        return session.scalars(select(SightingRow.id).where(SightingRow.source_id == source_id)).one()


def paper_of(engine: Engine, sighting: int) -> int:
    with transaction(engine) as session:
        return session.scalars(select(SightingRow.paper_id).where(SightingRow.id == sighting)).one()


def paper(engine: Engine, paper_id: int) -> PaperRow | None:
    with transaction(engine) as session:
        return session.get(PaperRow, paper_id)


def wrong_merge(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> int:
    """V2, its CVPR sighting and V3, all in one paper as an earlier version stored them."""
    with monkeypatch.context() as patch:
        patch.setattr(ingest, "title_score", lambda a, b, cutoff: fuzz.ratio(a, b, score_cutoff=cutoff))
        ids = load(engine, V2, V3, V2_AT_CVPR)
    forget_indexes()
    assert len(set(ids)) == 1
    return ids[0]


def test_every_papers_command_has_help() -> None:
    for command in ("show", "split", "merge", "rebuild", "check"):
        result = CliRunner().invoke(main, ["papers", command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_split_rebuilds_both_papers_as_ingestion_would(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    merged = wrong_merge(engine, monkeypatch)
    before = paper(engine, merged)
    assert before is not None and before.openreview_id == "AbCdEfGh12"  # V3's key, on V2's paper
    v3 = sighting_id(engine, "or-v3")
    assert v3 in [s["id"] for s in run_json(db_url, "papers", "show", str(merged))["sightings"]]

    result = run_json(db_url, "papers", "split", str(merged), "--sighting", str(v3))

    new = result["other_id"]
    assert result["sightings_moved"] == [v3]
    kept, split_off = paper(engine, merged), paper(engine, new)
    assert kept is not None and split_off is not None
    assert (kept.title, kept.arxiv_id, kept.openreview_id) == (V2.title, "2403.01111", None)
    assert (
        kept.cvf_url
        == "https://openaccess.thecvf.com/content/CVPR2024/html/Lopez_SmartPrompt_CVPR_2024_paper.html"
    )
    assert (kept.venue, kept.year, kept.previous_venue) == ("CVPR 2024", 2024, "arXiv")
    with transaction(engine) as session:
        cvpr_seen = session.scalars(
            select(SightingRow.fetched_at).where(SightingRow.source_id == "cvpr-v2")
        ).one()
    # Upgraded when the CVPR sighting came, not at the repair: the digest does not announce it again.
    assert kept.venue_upgraded_at == cvpr_seen
    with transaction(engine) as session:  # each upgrade made, for the digest of its week
        upgrades = session.execute(
            select(VenueUpgradeRow.at, VenueUpgradeRow.venue)
            .where(VenueUpgradeRow.paper_id == merged)
            .order_by(VenueUpgradeRow.at)
        ).all()
        by_v3 = session.scalars(select(SightingRow.fetched_at).where(SightingRow.source_id == "or-v3")).one()
    assert [tuple(row) for row in upgrades] == [(by_v3, "ICLR 2025"), (cvpr_seen, "CVPR 2024")]
    assert kept.abstract == V2.abstract
    assert (split_off.title, split_off.abstract, split_off.openreview_id) == (
        V3.title,
        V3.abstract,
        "AbCdEfGh12",
    )
    assert (split_off.venue, split_off.year, split_off.arxiv_id, split_off.previous_venue) == (
        "ICLR 2025",
        2025,
        None,
        None,
    )
    # The same papers a fresh store makes of these records with today's rule.
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    upgrade(fresh)
    fresh_ids = load(fresh, V2, V3, V2_AT_CVPR)
    assert fresh_ids[0] == fresh_ids[2] != fresh_ids[1]
    columns = ["title", "abstract", "authors", "arxiv_id", "doi", "openreview_id", "cvf_url", "venue", "year"]
    columns += ["previous_venue", "published_at"]
    for repaired_id, fresh_id in ((merged, fresh_ids[0]), (new, fresh_ids[1])):
        repaired, made = paper(engine, repaired_id), paper(fresh, fresh_id)
        assert [getattr(repaired, c) for c in columns] == [getattr(made, c) for c in columns]
    fresh.dispose()


def test_each_upgrade_of_a_paper_upgraded_twice_is_the_one_of_its_week(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """V2, listed as a preprint, went to ICLR 2025 in 2026-W47 by a wrong merge (V3's
    sighting); the split of W48 took that venue back and V2's CVPR record upgraded it again
    that week; the list dropped it in W49. The digest read the upgrade from the paper's
    columns (the last one only) for the papers of the list as it is at the build: W47 and
    W48 built after that listed nothing. Each week lists its own upgrade now."""
    week_a, week_b = datetime(2026, 11, 18, 7, tzinfo=UTC), datetime(2026, 11, 25, 7, tzinfo=UTC)
    (paper_id,) = load(engine, V2, at=datetime(2026, 11, 2, 7, tzinfo=UTC))
    with transaction(engine) as session:
        vpt = CatalogueRow(name="vpt", source_text="# list\n", source_sha256="0" * 64)
        session.add(vpt)
        session.flush()
        session.add(
            EntryRow(
                catalogue_id=vpt.id,
                paper_id=paper_id,
                position=0,
                title=V2.title,
                title_key=title_key(V2.title),
                venue="arXiv",
                state="imported",
            )
        )
    with monkeypatch.context() as patch:  # the earlier version's rule, see `wrong_merge`
        patch.setattr(ingest, "title_score", lambda a, b, cutoff: fuzz.ratio(a, b, score_cutoff=cutoff))
        assert load(engine, V3, at=week_a) == [paper_id]
    forget_indexes()
    run_json(db_url, "papers", "split", str(paper_id), "--sighting", str(sighting_id(engine, "or-v3")))
    assert load(engine, V2_AT_CVPR, at=week_b) == [paper_id]
    with transaction(engine) as session:
        session.execute(delete(EntryRow))  # W49: the list no longer has it

    def upgrades(week: int) -> list[tuple[str, str | None]]:
        [catalogue] = build_digest(engine, Week(2026, week), now=datetime(2026, 12, 7, tzinfo=UTC)).catalogues
        return [(line.title, line.note) for line in catalogue.upgrades]

    assert upgrades(47) == [(V2.title, "arXiv → ICLR 2025 2025")]
    assert upgrades(48) == [(V2.title, "arXiv → CVPR 2024 2024")]
    assert upgrades(49) == []


def test_split_refuses_bad_ids_with_one_line(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    merged = wrong_merge(engine, monkeypatch)
    (other,) = load(
        engine,
        RawRecord(source="jsonl", source_id="x", title="Another Paper Entirely", arxiv_id="2501.00002"),
    )
    foreign = sighting_id(engine, "x")
    every = [str(sighting_id(engine, s)) for s in ("2403.01111", "or-v3", "cvpr-v2")]
    cases = [
        (["999"], "Error: no paper 999"),
        ([str(merged), "--sighting", "99999"], "Error: no sighting 99999"),
        (
            [str(merged), "--sighting", str(foreign)],
            f"sighting {foreign} is of paper {other}, not of paper {merged}",
        ),
        ([str(merged), *(arg for s in every for arg in ("--sighting", s))], "has no other sightings"),
        ([str(merged), "--sighting", "0"], "Invalid value"),
    ]
    for args, message in cases:
        if args == ["999"]:
            args = ["999", "--sighting", "1"]
        code, out, err = run(db_url, "papers", "split", *args)
        assert code == 2, (args, out, err)
        assert message in err and "Traceback" not in err
    assert paper(engine, merged) is not None  # nothing changed
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(PaperRow)) == 2


def test_split_refuses_sightings_that_share_an_arxiv_id(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    merged = wrong_merge(engine, monkeypatch)
    (again,) = load(
        engine, RawRecord(source="arxiv_rss", source_id="rss-v2", title=V2.title, arxiv_id="2403.01111v2")
    )
    assert again == merged
    code, _out, err = run(
        db_url, "papers", "split", str(merged), "--sighting", str(sighting_id(engine, "rss-v2"))
    )
    assert code == 2
    assert "share the arXiv id 2403.01111" in err


def test_split_and_merge_of_one_sighting_say_it_in_the_singular(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counts of a repair's report agree with their ids: the usual repair moves one
    sighting, and it said "sightings 2 are now paper 4"."""
    merged = wrong_merge(engine, monkeypatch)
    v3 = sighting_id(engine, "or-v3")
    code, out, err = run(db_url, "papers", "split", str(merged), "--sighting", str(v3))
    assert code == 0, err
    new = paper_of(engine, v3)
    assert out.startswith(f"split paper {merged}: sighting {v3} is now paper {new} ("), out
    code, out, err = run(db_url, "papers", "merge", str(merged), str(new))
    assert code == 0, err
    assert f"merged paper {new} into {merged} (" in out and f"): sighting {v3} moved\n" in out, out


def test_split_keeps_references_consistent(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    merged = wrong_merge(engine, monkeypatch)
    with transaction(engine) as session:
        vpt = CatalogueRow(name="vpt", source_text="# list\n", source_sha256="0" * 64)
        vlm = CatalogueRow(name="vlm", source_text="# list\n", source_sha256="0" * 64)
        session.add_all([vpt, vlm])
        session.flush()
        # vpt lists V3 (its entry's sighting is part of the paper); vlm rejected the paper.
        listed = CandidateRow(paper_id=merged, catalogue_id=vpt.id, status="published")
        queued = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)  # weeks before the split
        rejected = CandidateRow(
            paper_id=merged, catalogue_id=vlm.id, status="rejected", reason="not prompts", created_at=queued
        )
        session.add_all([listed, rejected])
        session.flush()
        entry = EntryRow(
            catalogue_id=vpt.id,
            paper_id=merged,
            candidate_id=listed.id,
            position=0,
            title=V3.title,
            title_key=title_key(V3.title),
        )
        session.add(entry)
        session.add(ScoringBacklogRow(catalogue="retired", paper_id=merged))
        # Scored for this one already: the row stays for the digest, and owes nothing.
        session.add(ScoringBacklogRow(catalogue="paid", paper_id=merged, scored_at=datetime.now(UTC)))
        session.flush()
        ids = {"entry": entry.id, "listed": listed.id, "rejected": rejected.id}
    catalogue_sighting = RawRecord(
        source="catalogue", source_id=f"vpt:{title_key(V3.title)}", title=V3.title, venue="ICLR 2025"
    )
    with monkeypatch.context() as patch:
        patch.setattr(ingest, "title_score", lambda a, b, cutoff: fuzz.ratio(a, b, score_cutoff=cutoff))
        assert load(engine, catalogue_sighting) == [merged]
    moved = [sighting_id(engine, "or-v3"), sighting_id(engine, catalogue_sighting.source_id)]

    result = run_json(db_url, "papers", "split", str(merged), *(f"--sighting={s}" for s in moved))

    new = result["other_id"]
    with transaction(engine) as session:
        moved_entry = session.get(EntryRow, ids["entry"])
        assert moved_entry is not None and moved_entry.paper_id == new  # the entry follows its own sighting
        assert session.get(CandidateRow, ids["listed"]).paper_id == new  # type: ignore[union-attr]
        assert session.get(CandidateRow, ids["rejected"]).paper_id == merged  # type: ignore[union-attr]
        copies = session.scalars(select(CandidateRow).where(CandidateRow.paper_id == new)).all()
        rejections = [c for c in copies if c.status == "rejected"]
        assert len(rejections) == 1 and "not prompts" in (rejections[0].reason or "")
        # Queued when the paper was: it is no new candidate of the split's week (the digest
        # listed the old rejection among the week's new candidates, as if it came in).
        assert rejections[0].created_at == queued
        owed = set(
            session.scalars(select(ScoringBacklogRow.catalogue).where(ScoringBacklogRow.paper_id == new))
        )
        assert owed == {"vpt", "vlm", "retired"}  # the configured catalogues and what the old one owed
    assert result["candidates_copied"] == [rejections[0].id]
    digest = build_digest(engine, Week.of(datetime.now(UTC)))
    assert {c.name: c.new_count for c in digest.catalogues}["vlm"] == 0
    # The rejected paper is never proposed to vlm again: the enqueue skips known papers.
    from vpt_tracker.enqueue import _known_papers

    with transaction(engine) as session:
        known, _names = _known_papers(
            session, session.scalars(select(CatalogueRow).where(CatalogueRow.name == "vlm")).one()
        )
        assert {merged, new} <= known


def test_split_finds_an_entrys_own_sighting_stored_under_an_older_title_key(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An entry's own sighting has the source id "<catalogue>:<title key>" of the day it was
    # stored. Migration 0008 re-keyed the entry (its "v$_3$" folded to "v 3", now to "v3"), so
    # the source id no longer named it, and a split that moved the sighting left the entry behind.
    merged = wrong_merge(engine, monkeypatch)
    title = r"SmartPrompt v$_3$: Visual Prompt Tuning for Frozen Backbones"
    assert title_key(title) == title_key(V3.title)
    with transaction(engine) as session:
        vpt = CatalogueRow(name="vpt", source_text="# list\n", source_sha256="0" * 64)
        session.add(vpt)
        session.flush()
        entry = EntryRow(
            catalogue_id=vpt.id, paper_id=merged, position=0, title=title, title_key=title_key(title)
        )
        session.add(entry)
        session.flush()
        entry_id = entry.id
    own = RawRecord(
        source="catalogue",
        source_id="vpt:smartprompt v 3 visual prompt tuning for frozen backbones",  # before 0008
        title=title,
        venue="ICLR 2025",
    )
    with monkeypatch.context() as patch:
        patch.setattr(ingest, "title_score", lambda a, b, cutoff: fuzz.ratio(a, b, score_cutoff=cutoff))
        assert load(engine, own) == [merged]
    moved = [sighting_id(engine, "or-v3"), sighting_id(engine, own.source_id)]

    new = run_json(db_url, "papers", "split", str(merged), *(f"--sighting={s}" for s in moved))["other_id"]

    with transaction(engine) as session:
        moved_entry = session.get(EntryRow, entry_id)
        assert moved_entry is not None and moved_entry.paper_id == new  # the entry follows its own sighting


def test_merge_joins_two_papers_and_their_reviews(engine: Engine, db_url: str) -> None:
    # Today's rule keeps a title without its venue's number apart; the maintainer knows better.
    keep, other = load(
        engine,
        RawRecord(
            source="arxiv_api",
            source_id="2402.05555",
            title="Prompt Pools for Continual Learning",
            abstract="We learn a pool of prompts.",
            authors=("Kai Wu",),
            arxiv_id="2402.05555",
        ),
        RawRecord(
            source="cvf",
            source_id="cvpr-pools",
            title="Learning Prompt Pools for Continual Adaptation",
            authors=("Kai Wu", "Li Na"),
            cvf_url="https://openaccess.thecvf.com/content/CVPR2024/html/Wu_Pools_CVPR_2024_paper.html",
            venue="CVPR 2024",
            year=2024,
        ),
    )
    assert keep != other
    with transaction(engine) as session:
        vpt = CatalogueRow(name="vpt", source_text="# list\n", source_sha256="0" * 64)
        vlm = CatalogueRow(name="vlm", source_text="# list\n", source_sha256="0" * 64)
        session.add_all([vpt, vlm])
        session.flush()
        queued = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)  # the first record's candidate, weeks before
        pending = CandidateRow(paper_id=keep, catalogue_id=vpt.id, status="pending", created_at=queued)
        rejected = CandidateRow(paper_id=other, catalogue_id=vpt.id, status="rejected")
        only_other = CandidateRow(paper_id=other, catalogue_id=vlm.id, status="pending")
        session.add_all([pending, rejected, only_other])
        session.flush()
        session.add(
            DecisionRow(
                candidate_id=rejected.id,
                reviewer="ana",
                action="reject",
                before={"status": "pending", "version": 0},
                after={"status": "rejected", "version": 1},
            )
        )
        entry = EntryRow(catalogue_id=vlm.id, paper_id=other, position=0, title="Pools", title_key="pools")
        session.add(entry)
        session.add_all(
            [
                ScoringBacklogRow(catalogue="vpt", paper_id=keep),
                ScoringBacklogRow(catalogue="vpt", paper_id=other),
                ScoringBacklogRow(catalogue="vlm", paper_id=other),
                # Scored for vlm before: kept for the digest, and no debt that vlm's above is one with.
                ScoringBacklogRow(catalogue="vlm", paper_id=keep, scored_at=datetime.now(UTC)),
            ]
        )
        session.flush()
        ids = {"pending": pending.id, "rejected": rejected.id, "only_other": only_other.id, "entry": entry.id}

    result = run_json(db_url, "papers", "merge", str(keep), str(other))

    assert result["candidates_dropped"] == [ids["pending"]]
    assert result["decisions_moved"] == 0
    assert paper(engine, other) is None
    merged = paper(engine, keep)
    assert merged is not None
    assert (merged.title, merged.arxiv_id, merged.cvf_url is not None) == (
        "Prompt Pools for Continual Learning",
        "2402.05555",
        True,
    )
    assert (merged.venue, merged.year, merged.previous_venue) == ("CVPR 2024", 2024, "arXiv")
    assert merged.venue_upgraded_at is not None
    with transaction(engine) as session:  # made by the merge, at the CVPR sighting's time
        made = session.scalars(select(VenueUpgradeRow)).one()
        assert (made.paper_id, made.at, made.venue, made.listed_in) == (
            keep,
            merged.venue_upgraded_at,
            "CVPR 2024",
            [session.scalars(select(CatalogueRow.id).where(CatalogueRow.name == "vlm")).one()],
        )
    with transaction(engine) as session:
        assert set(session.scalars(select(SightingRow.paper_id))) == {keep}
        candidates = {c.id: c for c in session.scalars(select(CandidateRow))}
        # The rejection outranks the pending candidate: the paper is not proposed to vpt again.
        assert set(candidates) == {ids["rejected"], ids["only_other"]}
        assert {c.paper_id for c in candidates.values()} == {keep}
        assert candidates[ids["rejected"]].status == "rejected"
        assert candidates[ids["rejected"]].version == 1  # no decision moved onto it: ana may undo hers
        # Queued when the first of the two was, as the paper was created when the first was:
        # the merged paper is no new candidate of this week in the digest.
        assert candidates[ids["rejected"]].created_at == queued
        decision = session.scalars(select(DecisionRow)).one()
        assert decision.candidate_id == ids["rejected"]
        assert session.get(EntryRow, ids["entry"]).paper_id == keep  # type: ignore[union-attr]
        backlog = sorted(
            (name, paper_id, scored is None)
            for name, paper_id, scored in session.execute(
                select(ScoringBacklogRow.catalogue, ScoringBacklogRow.paper_id, ScoringBacklogRow.scored_at)
            )
        )
        assert backlog == [("vlm", keep, False), ("vlm", keep, True), ("vpt", keep, True)]
    # A new sighting of either key now finds the merged paper.
    forget_indexes()
    again = RawRecord(
        source="cvf",
        source_id="cvpr-pools-2",
        title="Learning Prompt Pools for Continual Adaptation",
        cvf_url="https://openaccess.thecvf.com/content/CVPR2024/html/Wu_Pools_CVPR_2024_paper.html",
    )
    assert load(engine, again) == [keep]
    digest = build_digest(engine, Week.of(datetime.now(UTC)))
    assert {c.name: c.new_count for c in digest.catalogues} == {"vlm": 1, "vpt": 0}


def test_merge_moves_decisions_of_the_dropped_candidate(engine: Engine, db_url: str) -> None:
    keep, other = load(
        engine,
        RawRecord(source="jsonl", source_id="a", title="Alpha Prompt Paper", arxiv_id="2401.00001"),
        RawRecord(source="jsonl", source_id="b", title="Beta Something Else"),
    )
    with transaction(engine) as session:
        vpt = CatalogueRow(name="vpt", source_text="# list\n", source_sha256="0" * 64)
        session.add(vpt)
        session.flush()
        accepted = CandidateRow(paper_id=keep, catalogue_id=vpt.id, status="accepted")
        deferred = CandidateRow(paper_id=other, catalogue_id=vpt.id, status="deferred")
        session.add_all([accepted, deferred])
        session.flush()
        session.add(
            DecisionRow(
                candidate_id=deferred.id,
                reviewer="ana",
                action="defer",
                before={"status": "pending", "version": 4},
                after={"status": "deferred", "version": 5},
            )
        )
        # Published once (its entry left the list since), and its paper upgraded once: what
        # happened to the paper merged away stays, for the digests of those weeks.
        session.add(PublicationRow(catalogue_id=vpt.id, candidate_id=deferred.id))
        session.add(VenueUpgradeRow(paper_id=other, previous_venue="arXiv", venue="CVPR", listed_in=[]))
        ids = (accepted.id, deferred.id)
    code, out, err = run(db_url, "papers", "merge", str(keep), str(other))
    assert code == 0, err  # one decision is one (it said "1 decisions kept")
    assert f"candidates dropped: {ids[1]} (1 decision kept on the candidate that stays)" in out
    with transaction(engine) as session:
        kept = session.get(CandidateRow, ids[0])
        assert kept is not None and kept.status == "accepted" and kept.version == 6
        assert session.scalars(select(DecisionRow.candidate_id)).one() == ids[0]
        assert session.scalars(select(PublicationRow.candidate_id)).one() == ids[0]
        assert session.scalars(select(VenueUpgradeRow.paper_id)).all() == [keep]
    # Undo of the moved decision would put the accepted paper back to pending: refused.
    code, _out, err = run(db_url, "review", "undo", "--reviewer", "ana")
    assert code != 0 and "changed since" in err


def test_merge_refuses_two_arxiv_ids_and_bad_ids(engine: Engine, db_url: str) -> None:
    a, b = load(
        engine,
        RawRecord(source="jsonl", source_id="a", title="Alpha Prompt Paper", arxiv_id="2401.00001"),
        RawRecord(source="jsonl", source_id="b", title="Beta Prompt Paper", arxiv_id="2401.00002"),
    )
    for args, message in [
        ([str(a), str(b)], "has the arXiv id 2401.00002 and the merged paper would have 2401.00001"),
        ([str(a), str(a)], f"cannot merge paper {a} with itself"),
        ([str(a), "424242"], "no paper 424242"),
        (["-3", str(a)], "No such option"),
    ]:
        code, out, err = run(db_url, "papers", "merge", *args)
        assert code == 2, (args, out, err)
        assert message in err and "Traceback" not in err
    assert paper(engine, a) is not None and paper(engine, b) is not None


def test_repair_discards_the_saved_index(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    """A split saved in no snapshot would be undone by the next run's index: V3's next
    sighting would go back into V2's paper by the OpenReview id the old index holds."""
    keep_index_between_runs(isolated / "cache")
    merged = wrong_merge(engine, monkeypatch)
    keep_index_between_runs(isolated / "cache")
    with transaction(engine) as session:
        ingest._INDEX_CACHE.put(session, ingest.IdentityIndex.load(session))
    assert save_index(engine)
    snapshots = list((isolated / "cache").glob("identity-index-*"))
    assert snapshots

    result = run_json(db_url, "papers", "split", str(merged), "--sighting", str(sighting_id(engine, "or-v3")))

    assert not any(path.exists() for path in snapshots)
    keep_index_between_runs(isolated / "cache")
    forget_indexes()
    v3_again = RawRecord(
        source="openreview",
        source_id="or-v3-camera",
        title=V3.title,
        openreview_id="AbCdEfGh12",
        venue="ICLR 2025",
    )
    assert load(engine, v3_again) == [result["other_id"]]


def test_check_lists_old_merges_of_titles_that_differ_in_a_number(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    merged = wrong_merge(engine, monkeypatch)
    load(
        engine,
        RawRecord(source="arxiv_rss", source_id="rss", title=V2.title + " (extended)", arxiv_id="2403.01111"),
    )
    v3 = sighting_id(engine, "or-v3")
    checked = run_json(db_url, "papers", "check")
    assert checked["stale_keys"] == []
    (suspect,) = checked["titles_differ_in_a_number"]
    assert suspect["paper_id"] == merged
    assert [g["numbers"] for g in suspect["groups"]] == [["2"], ["3"]]
    assert suspect["split"] == f"vpt-tracker papers split {merged} --sighting {v3}"
    code, out, _ = run(db_url, "papers", "check")
    assert code == 0 and "1 paper holds sightings whose titles differ in a number; 0 keys are" in out

    run_json(db_url, "papers", "split", str(merged), "--sighting", str(v3))
    assert run_json(db_url, "papers", "check") == {"titles_differ_in_a_number": [], "stale_keys": []}


# The real cs.CV feed of 2024-06-11 gives 2406.03645 this DOI field; an earlier version kept
# it whole as the paper's key (see test_ingest.test_a_doi_field_that_repeats_its_doi_gives_that_doi).
DOI_FIELD = "10.1109/JSTARS.2024.3413003 10.1109/JSTARS.2024.3413003 10.1109/JSTARS.2024.3413003"
SEA_ICE = RawRecord(
    source="arxiv_rss",
    source_id="2406.03645",
    title="Partial Label Learning with Focal Loss for Sea Ice Classification Based on Ice Charts",
    authors=("Behzad Vahedi", "Benjamin Lucas", "Farnoush Banaei-Kashani"),
    arxiv_id="2406.03645",
    doi=DOI_FIELD,
)
SEA_ICE_JOURNAL = RawRecord(
    source="catalogue",
    source_id="synthetic:sea-ice",
    title="Partial Label Learning With Focal Loss for Sea Ice Classification",
    doi="https://doi.org/10.1109/JSTARS.2024.3413003",
    venue="IEEE JSTARS",
    year=2024,
)


def old_doi_key(engine: Engine) -> int:
    """The sea-ice paper as an earlier version stored it: keyed by the whole DOI field."""
    (paper_id,) = load(engine, SEA_ICE)
    with transaction(engine) as session:
        row = session.get(PaperRow, paper_id)
        assert row is not None
        row.doi = DOI_FIELD.lower()
    forget_indexes()
    return paper_id


def test_a_multi_doi_key_of_an_old_store_is_found_and_merged(engine: Engine, db_url: str) -> None:
    old = old_doi_key(engine)
    (journal,) = load(engine, SEA_ICE_JOURNAL)
    assert journal != old  # the stale key kept the journal's record away: a duplicate

    checked = run_json(db_url, "papers", "check")
    (stale,) = checked["stale_keys"]
    assert (stale["paper_id"], stale["key"], stale["current"]) == (old, "doi", "10.1109/jstars.2024.3413003")
    assert stale["held_by"] == journal
    assert stale["fix"] == f"vpt-tracker papers merge {old} {journal}"

    run_json(db_url, "papers", "merge", str(old), str(journal))
    merged = paper(engine, old)
    assert merged is not None
    assert (merged.doi, merged.arxiv_id, merged.venue, merged.previous_venue) == (
        "10.1109/jstars.2024.3413003",
        "2406.03645",
        "IEEE JSTARS",
        "arXiv",
    )
    assert run_json(db_url, "papers", "check")["stale_keys"] == []
    again = RawRecord(
        source="crossref", source_id="sea-ice", title="Sea ice", doi="10.1109/jstars.2024.3413003"
    )
    assert load(engine, again) == [old]


def test_rebuild_gives_an_old_paper_the_key_ingestion_makes_now(engine: Engine, db_url: str) -> None:
    old = old_doi_key(engine)
    (stale,) = run_json(db_url, "papers", "check")["stale_keys"]
    assert stale["held_by"] is None and stale["fix"] == f"vpt-tracker papers rebuild {old}"

    result = run_json(db_url, "papers", "rebuild", str(old))

    assert result["changed"] == {"doi": [DOI_FIELD.lower(), "10.1109/jstars.2024.3413003"]}
    code, out, _ = run(db_url, "papers", "rebuild", str(old))
    assert code == 0 and "nothing changed" in out
    assert load(engine, SEA_ICE_JOURNAL) == [old]  # the journal's record now finds it
    code, _out, err = run(db_url, "papers", "rebuild", "4040")
    assert code == 2 and "Error: no paper 4040" in err


@pytest.mark.parametrize("action", ["split", "merge"])
def test_a_failure_late_in_a_repair_leaves_the_store_as_it_was(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    """One transaction: a crash after every row was written (here: in the last step) keeps none of it."""
    from vpt_tracker import identity

    merged = wrong_merge(engine, monkeypatch)
    (other,) = load(engine, RawRecord(source="jsonl", source_id="x", title="Another Paper Entirely"))

    def state() -> list[Any]:
        with transaction(engine) as session:
            papers = session.execute(
                select(PaperRow.id, PaperRow.title, PaperRow.openreview_id).order_by(PaperRow.id)
            )
            sightings = session.execute(select(SightingRow.id, SightingRow.paper_id).order_by(SightingRow.id))
            return [papers.all(), sightings.all()]

    before = state()

    def crash(session: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(identity, "discard_index", crash)
    with pytest.raises(RuntimeError, match="killed"):
        if action == "split":
            identity.split(engine, merged, [sighting_id(engine, "or-v3")], catalogues=["vpt"])
        else:
            identity.merge(engine, merged, other)
    assert state() == before


def test_a_repair_waits_for_no_run(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A nightly run holds the pipeline lock, and an index that predates the repair: refused."""
    from vpt_tracker.locks import EX_TEMPFAIL, exclusive

    merged = wrong_merge(engine, monkeypatch)
    with exclusive(engine, "pipeline"):
        code, _out, err = run(
            db_url, "papers", "split", str(merged), "--sighting", str(sighting_id(engine, "or-v3"))
        )
    assert code == EX_TEMPFAIL and err.startswith("Error:")
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(PaperRow)) == 1


def test_a_sighting_reads_back_as_the_record_it_stored() -> None:
    record = RawRecord(
        source="arxiv_api",
        source_id="2403.01111v2",
        title="SmartPrompt v2",
        authors=("Ana Lopez",),
        published=datetime(2024, 3, 2, 17, 5, tzinfo=UTC),
        categories=("cs.CV", "cs.LG"),
        payload={"raw": {"entry": 1}},
    )
    again = RawRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert again == record and again.payload == record.payload
    assert again.payload_hash == record.payload_hash
    # A payload of another version: unknown keys are ignored, missing ones take defaults.
    older = RawRecord.from_json({"source": "jsonl", "source_id": "x", "title": "T", "retired_field": 1})
    assert older == RawRecord(source="jsonl", source_id="x", title="T")


OCEAN_WAVES = RawRecord(
    source="arxiv_api", source_id="2501.00001", title="Forecasting Ocean Waves with Graph Networks",
    authors=("Ida Berg",), arxiv_id="2501.00001",
)  # fmt: skip
SMARTPROMPT_DOI = RawRecord(
    source="crossref", source_id="smartprompt-doi", title=V2.title, authors=V2.authors,
    arxiv_id=V2.arxiv_id, doi="10.1000/smartprompt",
)  # fmt: skip
SMARTPROMPT_BY_DOI = RawRecord(
    source="catalogue", source_id="smartprompt-by-doi", title="SmartPrompt (journal version)",
    doi="10.1000/SMARTPROMPT",
)  # fmt: skip


def store_state(engine: Engine) -> tuple[Any, ...]:
    """What a saved identity index was checked against before: count, highest id, latest change."""
    with transaction(engine) as session:
        query = select(func.count(PaperRow.id), func.max(PaperRow.id), func.max(PaperRow.modified_at))
        return tuple(session.execute(query).one())


@pytest.mark.parametrize("writer", ["rebuild", "ingest"])
def test_a_write_from_a_host_whose_clock_is_behind_still_retires_every_saved_index(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, isolated: Path, writer: str
) -> None:
    """Several hosts, one PostgreSQL store. A saved index was trusted while the paper count,
    the highest id and the latest modification time were those it was saved with; a write
    from a host whose clock is behind (`papers rebuild`, or a record that gives a paper a
    key) changes none of the three, and the other host's next run went on with the index
    from before: it took the repaired DOI for free and failed on the unique key, on every
    rerun. Every identity write now raises a counter in the store, in its own transaction."""
    from vpt_tracker import identity

    host_a, host_b = isolated / "cache", isolated.parent / "host-b" / "cache"
    keep_index_between_runs(host_a)
    sea_ice = old_doi_key(engine)
    smartprompt, _latest = load(engine, V2, OCEAN_WAVES)  # the last write, by host A
    assert save_index(engine)
    saved = store_state(engine)

    keep_index_between_runs(host_b)  # host B: its own data dir, and a clock years behind
    forget_indexes()
    behind = datetime(2020, 1, 1, tzinfo=UTC)
    if writer == "rebuild":
        monkeypatch.setattr(identity, "utcnow", lambda: behind)
        assert identity.rebuild(engine, sea_ice).changed  # the stale DOI is gone
    else:
        assert ingest_records(engine, [SMARTPROMPT_DOI], now=lambda: behind).merged == 1
    assert store_state(engine) == saved  # all the old check looked at is as it was

    keep_index_between_runs(host_a)  # host A's next run
    forget_indexes()
    if writer == "rebuild":
        assert load(engine, SEA_ICE_JOURNAL) == [sea_ice]
    else:
        assert load(engine, SMARTPROMPT_BY_DOI) == [smartprompt]
