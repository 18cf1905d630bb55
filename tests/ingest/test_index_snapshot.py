"""The identity index saved between runs: used when current, ignored when stale or damaged."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select, update

from vpt_tracker.dumps import read_corpus_jsonl
from vpt_tracker.ingest import (
    IdentityIndex,
    IngestStats,
    block_keys,
    forget_indexes,
    ingest_page,
    keep_index_between_runs,
    save_index,
)
from vpt_tracker.models import Page, RawRecord
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import IdentityGenerationRow, PaperRow

CORPUS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "corpus").glob("*.jsonl"))


@pytest.fixture
def snapshots(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "cache"
    keep_index_between_runs(folder)
    forget_indexes()
    yield folder
    keep_index_between_runs(None)
    forget_indexes()


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the times the index is rebuilt from the store."""
    counted: list[int] = []
    # mypy types the bound classmethod as a plain Callable, which has no __func__.
    real_load = IdentityIndex.load.__func__  # type: ignore[attr-defined]

    def counting_load(cls: type[IdentityIndex], session: object) -> IdentityIndex:
        counted.append(1)
        return real_load(cls, session)

    monkeypatch.setattr(IdentityIndex, "load", classmethod(counting_load))
    return counted


def page(records: list[RawRecord], cursor: str) -> Page:
    return Page(source="arxiv_rss", cursor_key="cs.CV", records=records, cursor=cursor)


def ingest(engine: Engine, records: list[RawRecord], cursor: str) -> IngestStats:
    with transaction(engine) as session:
        return ingest_page(session, page(records, cursor))


def paper_count(engine: Engine) -> int:
    with transaction(engine) as session:
        return session.scalar(select(func.count(PaperRow.id))) or 0


def retitled(record: RawRecord) -> RawRecord:
    """The same paper seen at a venue: no arXiv id, so only the fuzzy match can place it."""
    return RawRecord(
        source="cvf",
        source_id=f"cvf:{record.source_id}",
        title=record.title.upper() + ".",
        authors=record.authors,
        venue="CVPR",
        year=2026,
    )


def test_a_new_process_starts_from_the_saved_index(engine: Engine, snapshots: Path, loads: list[int]) -> None:
    records = read_corpus_jsonl(CORPUS[0])[:40]
    ingest(engine, records[:30], "1")
    assert save_index(engine)
    assert len(list(snapshots.glob("identity-index-*.pickle"))) == 1
    forget_indexes()  # what a new process has: nothing in memory
    before = paper_count(engine)
    stats = ingest(engine, [retitled(records[0]), *records[30:40]], "2")
    assert len(loads) == 1  # only the first page built it from the store
    assert stats.merged == 1  # the venue sighting found its preprint through the saved blocks
    assert paper_count(engine) == before + len({r.arxiv_id for r in records[30:40]})


def test_a_stale_snapshot_is_ignored(engine: Engine, snapshots: Path, loads: list[int]) -> None:
    records = read_corpus_jsonl(CORPUS[0])[:40]
    ingest(engine, records[:20], "1")
    assert save_index(engine)
    forget_indexes()
    with transaction(engine) as session:  # another writer changes the store after the save
        session.execute(update(PaperRow).where(PaperRow.id == 1).values(title="changed elsewhere"))
    ingest(engine, records[20:40], "2")
    assert len(loads) == 2  # the snapshot no longer matched the store: rebuilt


def test_a_damaged_snapshot_is_ignored_with_a_warning(
    engine: Engine, snapshots: Path, loads: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    records = read_corpus_jsonl(CORPUS[0])[:40]
    ingest(engine, records[:20], "1")
    assert save_index(engine)
    (snapshot,) = snapshots.glob("identity-index-*.pickle")
    snapshot.write_bytes(snapshot.read_bytes()[:100])
    forget_indexes()
    with caplog.at_level(logging.WARNING, logger="vpt_tracker.ingest"):
        stats = ingest(engine, records[:40], "2")
    assert len(loads) == 2
    assert "ignoring the identity index snapshot" in caplog.text
    assert stats.duplicate_sightings == 20  # and identity is still resolved right


def test_nothing_is_saved_without_a_snapshot_folder(engine: Engine, tmp_path: Path) -> None:
    keep_index_between_runs(None)
    ingest(engine, read_corpus_jsonl(CORPUS[0])[:5], "1")
    assert not save_index(engine)


def test_block_keys_are_the_same_in_every_process() -> None:
    """A saved index is only valid in another process if its block hashes are not salted."""
    title, authors = "visual prompt tuning for dense prediction", ("jdoe", "asmith")
    code = f"from vpt_tracker.ingest import block_keys; print(block_keys({title!r}, {authors!r}))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {str(block_keys(title, authors))}


def test_later_runs_append_to_a_journal_that_the_next_process_replays(
    engine: Engine, snapshots: Path, loads: list[int]
) -> None:
    records = read_corpus_jsonl(CORPUS[0])[:60]
    ingest(engine, records[:30], "1")
    assert save_index(engine)  # the first save writes the whole index
    (base,) = snapshots.glob("identity-index-*.pickle")
    written = base.stat().st_mtime_ns
    forget_indexes()
    ingest(engine, records[30:50], "2")  # a second run: new papers ...
    doi = RawRecord(  # ... and a stored paper that gains a DOI
        source="crossref", source_id="doi-record", title=records[0].title, authors=records[0].authors,
        arxiv_id=records[0].arxiv_id, doi="10.1000/JOURNALED",
    )  # fmt: skip
    ingest(engine, [doi], "3")
    assert save_index(engine)
    assert base.stat().st_mtime_ns == written  # extended, not rewritten
    assert base.with_suffix(".journal").stat().st_size > 0
    forget_indexes()  # a third process
    by_doi = RawRecord(source="crossref", source_id="by-doi", title="Another title", doi="10.1000/journaled")
    stats = ingest(engine, [retitled(records[40]), by_doi], "4")
    assert len(loads) == 1  # base + journal matched the store: never rebuilt after the first page
    assert stats.merged == 2 and stats.new_papers == 0  # a journaled paper, and a journaled DOI


def test_a_torn_journal_falls_back_to_the_store(
    engine: Engine, snapshots: Path, loads: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    records = read_corpus_jsonl(CORPUS[0])[:60]
    ingest(engine, records[:30], "1")
    assert save_index(engine)
    ingest(engine, records[30:50], "2")
    assert save_index(engine)
    journal = next(snapshots.glob("identity-index-*.journal"))
    journal.write_bytes(journal.read_bytes()[:-20])  # a crash while appending
    forget_indexes()
    with caplog.at_level(logging.WARNING, logger="vpt_tracker.ingest"):
        stats = ingest(engine, records[:60], "3")
    assert len(loads) == 2 and "journal" in caplog.text
    assert stats.duplicate_sightings == 50 and stats.new_papers == len({r.arxiv_id for r in records[50:60]})


def test_frozen_blocks_resolve_exactly_as_live_ones() -> None:
    """A saved index keeps its blocks as arrays (`freeze`); lookups must not change."""
    from vpt_tracker.ingest import _Known, record_keys

    records = [r for path in CORPUS[:3] for r in read_corpus_jsonl(path)][:300]
    live, frozen = IdentityIndex(), IdentityIndex()
    for number, record in enumerate(records):
        live.add(_Known(number, record_keys(record)))
        frozen.add(_Known(number, record_keys(record)))
        if number in (149, 249):  # frozen twice: arrays extended with later papers
            frozen.freeze()
    assert frozen.frozen is not None and frozen.blocks  # saved blocks and live ones, both looked up
    for record in records:
        sighting = record_keys(retitled(record))
        found_live, found_frozen = live.resolve(sighting), frozen.resolve(sighting)
        assert found_live is not None and found_frozen is not None
        assert found_live.id == found_frozen.id
    assert live.fuzzy_comparisons == frozen.fuzzy_comparisons


def test_a_snapshot_of_an_older_folding_is_rebuilt(engine: Engine, snapshots: Path, loads: list[int]) -> None:
    # A snapshot keeps each paper's author keys as the version that saved it folded them. The
    # previous version folded "Andreas M{\o}gelmose" to the surname "gelmose" (format 4); used
    # as it was, the Unicode spelling of the same author still shared no surname with it.
    title = "Learning to Find Missing Video Frames with Synthetic Data Augmentation"
    preprint = RawRecord(
        source="arxiv_rss",
        source_id="2403.00196v1",
        title=title,
        authors=(r"Andreas M{\o}gelmose",),
        arxiv_id="2403.00196",
    )
    ingest(engine, [preprint], "1")
    assert save_index(engine)
    (snapshot,) = snapshots.glob("identity-index-*.pickle")
    _format, url, state, index = pickle.loads(snapshot.read_bytes())
    (known,) = [known for group in index.by_title.values() for known in group]
    known.author_keys = ("gelmose",)  # what format 4 held for this author
    snapshot.write_bytes(pickle.dumps((4, url, state, index)))
    forget_indexes()
    venue = RawRecord(
        source="cvf", source_id="c", title=title, authors=("Andreas Møgelmose",), venue="IV", year=2024
    )
    stats = ingest(engine, [venue], "2")
    assert len(loads) == 2  # the old snapshot was not used
    assert (stats.new_papers, stats.merged) == (0, 1)


def test_a_forum_id_let_go_is_let_go_in_the_journal_too(
    engine: Engine, snapshots: Path, loads: list[int]
) -> None:
    # A rejected submission takes its forum id back from the paper (see test_identity_cases).
    # The journal replayed only keys that were gained: the next process's index still gave the
    # paper the forum id, and the paper's accepted resubmission became a second paper.
    title = "Conditional Prompt Learning for Vision-Language Models"
    authors = ("Kaiyang Zhou", "Jingkang Yang", "Chen Change Loy", "Ziwei Liu")

    def note(forum: str, decision: str, venue: str | None = None, title: str = title) -> RawRecord:
        return RawRecord(
            source="openreview",
            source_id=f"{forum}:{decision}",
            title=title,
            authors=authors,
            openreview_id=forum,
            decision=decision,
            venue=venue,
            year=2025 if venue else None,
        )

    preprint = RawRecord(
        source="arxiv_api", source_id="2203.05557v1", title=title, authors=authors, arxiv_id="2203.05557"
    )
    ingest(engine, [preprint, note("reviewedF1", "submitted")], "1")
    assert save_index(engine)
    ingest(engine, [note("reviewedF1", "rejected")], "2")
    assert save_index(engine)
    assert len(list(snapshots.glob("identity-index-*.journal"))) == 1  # saved as a journal entry
    forget_indexes()
    accepted = note("acceptedF1", "accepted", "NeurIPS", title.replace(" for ", " of "))
    stats = ingest(engine, [accepted], "3")
    assert len(loads) == 1  # the snapshot and its journal were used
    assert (stats.new_papers, stats.merged, stats.upgraded) == (0, 1, 1)


def test_an_identity_generation_deleted_by_hand_is_made_again(
    engine: Engine, snapshots: Path, loads: list[int]
) -> None:
    """The counter a saved index is checked against (`identity_changed`): without its row, no
    write would move it on and a host whose clock is behind could go unnoticed again."""
    records = read_corpus_jsonl(CORPUS[0])[:20]
    with transaction(engine) as session:
        session.execute(delete(IdentityGenerationRow))
    ingest(engine, records[:10], "1")
    assert save_index(engine)
    with transaction(engine) as session:
        assert session.scalar(select(IdentityGenerationRow.generation)) == 1
        session.execute(update(IdentityGenerationRow).values(generation=IdentityGenerationRow.generation + 1))
    forget_indexes()
    ingest(engine, records[10:20], "2")
    assert len(loads) == 2  # the counter alone moved: the snapshot was not used
