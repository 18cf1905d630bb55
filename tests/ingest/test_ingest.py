"""Ingestion against real SQLite and PostgreSQL: identity, merge, idempotency, cursors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from vpt_tracker import normalize
from vpt_tracker.dumps import read_conference_index, read_corpus_jsonl
from vpt_tracker.ingest import IdentityIndex, ingest_page, ingest_records, read_cursors
from vpt_tracker.models import Page, RawRecord
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CursorRow, PaperRow, SightingRow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CORPUS = sorted((FIXTURES / "corpus").glob("*.jsonl"))
CONFERENCES = FIXTURES / "ingest" / "conferences"
UPGRADE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def count(engine: Engine, table: type) -> int:
    with transaction(engine) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def papers(engine: Engine) -> list[PaperRow]:
    with transaction(engine) as session:
        return list(session.scalars(select(PaperRow).order_by(PaperRow.id)))


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (tables.UTCDateTime's processor does not reach it)."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def distinct_ids(paths: list[Path]) -> set[str]:
    return {
        json.loads(line)["id"] for path in paths for line in path.read_text().splitlines() if line.strip()
    }


def arxiv(
    title: str,
    arxiv_id: str,
    authors: tuple[str, ...],
    *,
    comment: str | None = None,
    doi: str | None = None,
    published: datetime | None = None,
) -> RawRecord:
    return RawRecord(
        source="arxiv_api",
        source_id=arxiv_id,
        title=title,
        authors=authors,
        arxiv_id=arxiv_id,
        abstract=f"abstract of {title}",
        comment=comment,
        doi=doi,
        published=published,
    )


def test_corpus_gives_one_paper_per_arxiv_id_and_reingesting_changes_nothing(engine: Engine) -> None:
    records = [record for path in CORPUS for record in read_corpus_jsonl(path)]
    expected = distinct_ids(CORPUS)
    assert len(records) > len(expected)  # the files do repeat papers

    first = ingest_records(engine, records, batch_size=100)

    rows = papers(engine)
    assert len(rows) == len(expected) == first.new_papers
    assert {row.arxiv_id for row in rows} == expected  # no false merge, no miss
    assert sorted(first.new_paper_ids) == [row.id for row in rows]
    # 2505.00275 is listed on 2025-05-02 and, revised, on 2025-09-09: one paper, two sightings.
    with transaction(engine) as session:
        revised = session.scalar(select(PaperRow).where(PaperRow.arxiv_id == "2505.00275"))
        assert revised is not None
        assert len(revised.sightings) == 2
        assert revised.year == 2025 and revised.venue == "arXiv" and revised.abstract
    sightings = count(engine, SightingRow)
    assert first.new_sightings == sightings
    assert first.duplicate_sightings == len(records) - sightings > 0

    again = ingest_records(engine, records, batch_size=1000)
    assert (again.new_papers, again.new_sightings, again.merged) == (0, 0, 0)
    assert again.duplicate_sightings == len(records)
    assert count(engine, PaperRow) == len(expected)
    assert count(engine, SightingRow) == sightings


def test_batch_size_does_not_change_identity(engine: Engine, tmp_path: Path) -> None:
    """The index carried across batches resolves like one big batch."""
    records = [record for record in read_corpus_jsonl(CORPUS[1])]
    stats = ingest_records(engine, records, batch_size=7)
    assert stats.new_papers == len(distinct_ids([CORPUS[1]])) == count(engine, PaperRow)


@pytest.mark.parametrize("venue_first", [False, True])
def test_preprint_and_venue_sightings_merge_and_the_venue_wins(engine: Engine, venue_first: bool) -> None:
    """The real ICCV 2023 index entry of E^2VPT and its arXiv record: another title spelling
    (LaTeX), authors in another order, no shared key. They are one paper, at ICCV."""
    (iccv,) = [r for r in read_conference_index(CONFERENCES / "ICCV2023.json") if "E^2VPT" in r.title]
    preprint = arxiv(
        r"E$^{2}$VPT: An Effective and Efficient Approach for Visual Prompt Tuning",
        "2307.13770v2",
        ("Qifan Wang", "Cheng Han", "Yiming Cui", "Zhiwen Cao", "Wenguan Wang", "Siyuan Qi", "Dongfang Liu"),
        published=datetime(2023, 7, 25, tzinfo=UTC),
    )
    order = [iccv, preprint] if venue_first else [preprint, iccv]
    stats = ingest_records(engine, order[:1], now=lambda: UPGRADE_TIME)
    stats += ingest_records(engine, order[1:], now=lambda: UPGRADE_TIME)

    (paper,) = papers(engine)
    assert (stats.new_papers, stats.merged) == (1, 1)
    assert stats.fuzzy_comparisons >= 1
    assert paper.arxiv_id == "2307.13770"
    assert paper.cvf_url == iccv.cvf_url
    assert (paper.venue, paper.year) == ("ICCV", 2023)
    if venue_first:  # a venue is never downgraded by a later preprint sighting
        assert stats.upgraded == 0
        assert paper.previous_venue is None and paper.venue_upgraded_at is None
    else:
        assert stats.upgraded == 1
        assert paper.previous_venue == "arXiv"
        assert as_utc(paper.venue_upgraded_at) == UPGRADE_TIME
    assert count(engine, SightingRow) == 2


def test_openreview_forum_sighting_upgrades_by_title_when_no_author_is_known(engine: Engine) -> None:
    (iclr,) = [
        r for r in read_conference_index(CONFERENCES / "ICLR2024.json") if r.title.startswith("AutoVP")
    ]
    assert iclr.openreview_id == "wR9qVlPh0P" and not iclr.authors
    ingest_records(
        engine,
        [
            arxiv(
                "AutoVP: an automated visual prompting framework and benchmark.",
                "2310.08381",
                ("Hsi-Ai Tsao", "Lei Hsiung"),
            )
        ],
    )
    stats = ingest_records(engine, [iclr])
    (paper,) = papers(engine)
    assert stats.upgraded == 1 and (paper.venue, paper.year, paper.openreview_id) == (
        "ICLR",
        2024,
        "wR9qVlPh0P",
    )


def test_a_rejected_submission_is_not_a_venue(engine: Engine) -> None:
    ingest_records(engine, [arxiv("Prompting Frozen Vision Transformers", "2401.00001", ("Ada Lovelace",))])
    rejected = RawRecord(
        source="openreview",
        source_id="AbCdEf123",
        title="Prompting frozen vision transformers",
        authors=("Ada Lovelace",),
        openreview_id="AbCdEf123",
        venue="ICLR",
        year=2025,
        decision="rejected",
    )
    stats = ingest_records(engine, [rejected])
    (paper,) = papers(engine)
    assert stats.merged == 1 and stats.upgraded == 0
    # Nor is its forum the paper's key: a resubmission comes back under another forum id.
    assert paper.venue == "arXiv" and paper.openreview_id is None


def test_versioned_ids_and_doi_spellings_are_one_paper(engine: Engine) -> None:
    records = [
        arxiv("Visual Prompt Tuning", "2203.12119v1", ("Menglin Jia",)),
        arxiv("Visual Prompt Tuning (revised)", "arXiv:2203.12119v3", ("Menglin Jia", "Luming Tang")),
        RawRecord(
            source="crossref", source_id="a", title="VPT", doi="https://doi.org/10.1007/978-3-031-19827-4_41"
        ),
        RawRecord(
            source="crossref",
            source_id="b",
            title="Visual prompt tuning!",
            doi="10.1007/978-3-031-19827-4_41",
        ),
        RawRecord(
            source="crossref",
            source_id="c",
            title="Something else entirely",
            doi="doi:10.1007/978-3-031-19827-4_41".upper(),
        ),
    ]
    stats = ingest_records(engine, records)
    rows = papers(engine)
    by_arxiv = [r for r in rows if r.arxiv_id == "2203.12119"]
    by_doi = [r for r in rows if r.doi == "10.1007/978-3-031-19827-4_41"]
    assert len(by_arxiv) == 1 and len(by_doi) == 1
    assert stats.new_sightings == 5


def test_different_arxiv_ids_or_dois_are_never_one_paper(engine: Engine) -> None:
    authors = ("Kaiyang Zhou", "Jingkang Yang")
    records = [
        arxiv("Learning to Prompt for Vision-Language Models", "2109.01134", authors),
        arxiv("Learning to Prompt for Vision-Language Models", "2109.09999", authors),
        RawRecord(
            source="x", source_id="1", title="Conditional Prompt Learning", authors=authors, doi="10.1/aaa"
        ),
        RawRecord(
            source="x", source_id="2", title="Conditional Prompt Learning", authors=authors, doi="10.1/bbb"
        ),
    ]
    stats = ingest_records(engine, records)
    assert stats.new_papers == 4 and count(engine, PaperRow) == 4


def test_fuzzy_match_needs_a_shared_author_and_a_close_title(engine: Engine) -> None:
    base = RawRecord(
        source="x",
        source_id="1",
        title="Prompt Learning for Frozen Segmentation Backbones",
        authors=("Grace Hopper", "Alan Turing"),
    )
    same = RawRecord(
        source="y",
        source_id="1",
        title="Prompt learning for frozen segmentation backbone",
        authors=("Alan Turing", "Grace Hopper"),
    )
    other_authors = RawRecord(
        source="y",
        source_id="2",
        title="Prompt Learning for Frozen Segmentation Backbones",
        authors=("Edsger Dijkstra",),
    )
    other_title = RawRecord(
        source="y",
        source_id="3",
        title="Prompt Learning for Frozen Detection Heads",
        authors=("Grace Hopper",),
    )
    stats = ingest_records(engine, [base, same, other_authors, other_title])
    assert (stats.new_papers, stats.merged) == (3, 1)


def test_latex_and_unicode_titles_fold_to_the_same_paper(engine: Engine) -> None:
    records = [
        RawRecord(
            source="a",
            source_id="1",
            title=r"Fran\c{c}ois' \textbf{Na\"{\i}ve} Prompts for $\alpha$-CLIP",
            authors=(r"Fran\c{c}ois Chollet",),
        ),
        RawRecord(
            source="b",
            source_id="1",
            title="François’ Naïve Prompts for α-CLIP",
            authors=("François Chollet",),
        ),
        RawRecord(
            source="c", source_id="1", title="FRANCOIS NAIVE PROMPTS FOR ALPHA CLIP", authors=("Chollet, F.",)
        ),
    ]
    stats = ingest_records(engine, records)
    assert (stats.new_papers, stats.merged) == (1, 2)


def test_a_key_held_by_another_paper_is_not_taken(engine: Engine) -> None:
    ingest_records(
        engine,
        [
            arxiv("Paper A", "2401.11111", ("A Author",)),
            RawRecord(source="crossref", source_id="b", title="Paper B", doi="10.1/b", authors=("B Author",)),
        ],
    )
    # The arXiv id says paper A, the DOI says paper B: the id wins and B keeps its DOI.
    stats = ingest_records(
        engine, [arxiv("Paper A", "2401.11111", ("A Author",), doi="10.1/B", comment="v2")]
    )
    rows = papers(engine)
    assert stats.merged == 1 and len(rows) == 2
    assert [(r.arxiv_id, r.doi) for r in rows] == [("2401.11111", None), (None, "10.1/b")]


def page(records: list[RawRecord], cursor: str, key: str = "cs.CV") -> Page:
    return Page(source="arxiv_rss", cursor_key=key, records=records, cursor=cursor)


def test_ingest_page_stores_records_and_cursor_together(engine: Engine) -> None:
    records = read_corpus_jsonl(CORPUS[0])[:20]
    with transaction(engine) as session:
        assert read_cursors(session, "arxiv_rss") == {}
        stats = ingest_page(session, page(records, "2025-05-02"))
    assert stats.new_papers == 20 and stats.new_paper_ids
    with transaction(engine) as session:
        assert read_cursors(session, "arxiv_rss") == {"cs.CV": "2025-05-02"}
        again = ingest_page(session, page(records, "2025-05-03"))
        ingest_page(session, page([], "2025-05-03", key="cs.LG"))
    assert again.duplicate_sightings == 20 and again.new_sightings == 0
    with transaction(engine) as session:
        assert read_cursors(session, "arxiv_rss") == {"cs.CV": "2025-05-03", "cs.LG": "2025-05-03"}
        assert read_cursors(session, "cvf") == {}
    assert count(engine, PaperRow) == 20


def test_a_failure_mid_page_leaves_neither_records_nor_cursor(engine: Engine) -> None:
    """Papers are written before sightings; a sighting that cannot be stored (its run does
    not exist) must take the papers and the cursor down with it."""
    records = read_corpus_jsonl(CORPUS[0])[:10]
    with transaction(engine) as session:
        ingest_page(session, page(records[:3], "first"))
    with pytest.raises(IntegrityError), transaction(engine) as session:
        ingest_page(session, page(records, "second"), run_id=424242)
    assert count(engine, PaperRow) == 3
    assert count(engine, SightingRow) == 3
    with transaction(engine) as session:
        assert read_cursors(session, "arxiv_rss") == {"cs.CV": "first"}
        assert session.scalar(select(func.count()).select_from(CursorRow)) == 1
    # The rerun stores exactly what the failed page had.
    with transaction(engine) as session:
        stats = ingest_page(session, page(records, "second"))
    assert (stats.new_papers, stats.duplicate_sightings) == (7, 3)


def test_ingest_records_keeps_committed_batches_when_the_input_fails_later(engine: Engine) -> None:
    """One transaction per batch: the batches before a failure stay, the failing one is absent."""
    records = read_corpus_jsonl(CORPUS[0])[:30]

    def failing_input() -> Iterator[RawRecord]:
        yield from records[:25]
        raise OSError("disk went away")

    with pytest.raises(OSError):
        ingest_records(engine, failing_input(), batch_size=10)
    stored = count(engine, SightingRow)
    assert stored == len({r.payload_hash for r in records[:20]})  # batches 1 and 2, not the partial third
    stats = ingest_records(engine, records, batch_size=10)
    assert stats.new_sightings == len({r.payload_hash for r in records}) - stored
    assert count(engine, PaperRow) == len({r.arxiv_id for r in records})


def test_index_loaded_from_the_store_resolves_like_the_one_that_built_it(engine: Engine) -> None:
    records = read_corpus_jsonl(CORPUS[0])
    ingest_records(engine, records)
    with transaction(engine) as session:
        index = IdentityIndex.load(session)
    assert len(index) == count(engine, PaperRow)
    stats = ingest_records(engine, [r for r in records[:5]], index=index)
    assert stats.duplicate_sightings == 5


def test_the_earliest_publication_date_is_kept_across_runs(engine: Engine) -> None:
    later = datetime(2024, 2, 1, tzinfo=UTC)
    earlier = datetime(2024, 1, 15, tzinfo=UTC)
    ingest_records(engine, [arxiv("Prompt Me", "2401.08000v2", ("A B",), published=later)])
    stats = ingest_records(
        engine, [arxiv("Prompt Me", "2401.08000v1", ("A B",), published=earlier, comment="c")]
    )
    (paper,) = papers(engine)
    assert stats.merged == 1
    assert as_utc(paper.published_at) == earlier and paper.comment == "c"


def test_a_paper_first_seen_replaced_in_a_feed_keeps_its_own_year(engine: Engine) -> None:
    # The real cs.CV feed of 2026-08-20 re-announces 2503.08484 (March 2025) as a replacement;
    # the feed's date of that day made it an "arXiv 2026" paper published in August 2026.
    from vpt_tracker.replay import default_root
    from vpt_tracker.sources.arxiv_rss import parse_feed

    feed = parse_feed((default_root() / "arxiv_rss" / "cs.CV" / "2026-08-20.xml").read_bytes(), "cs.CV")
    ingest_records(engine, feed.records)
    with transaction(engine) as session:
        replaced = session.scalars(select(PaperRow).where(PaperRow.arxiv_id == "2503.08484")).one()
        new = session.scalars(select(PaperRow).where(PaperRow.arxiv_id == "2608.18184")).one()
    assert (replaced.venue, replaced.year, replaced.published_at) == ("arXiv", 2025, None)
    assert new.year == 2026 and as_utc(new.published_at) == datetime(2026, 8, 20, 4, 0, tzinfo=UTC)


def test_a_feed_paper_whose_authors_list_affiliations_merges_with_its_venue_version(
    engine: Engine,
) -> None:
    # The real cs.CV feed of 2026-08-20 lists "Kai Van Brunt (Massachusetts Institute of
    # Technology), ...": every author had the surname "technology", shared no author with the
    # venue's list, and the venue version of the same title stayed a paper of its own.
    from vpt_tracker.replay import default_root
    from vpt_tracker.sources.arxiv_rss import parse_feed

    feed = parse_feed((default_root() / "arxiv_rss" / "cs.CV" / "2026-08-20.xml").read_bytes(), "cs.CV")
    ingest_records(engine, feed.records)
    venue = RawRecord(
        source="conference-index",
        source_id="synthetic:molmo2fish",
        title="Teach a Molmo2Fish: Towards Interactive Fish Tracking With Natural Language Guidance",
        authors=("Kai Van Brunt", "Justin Kay", "Sara Beery"),
        venue="WACV",
        year=2027,
    )
    stats = ingest_records(engine, [venue])
    assert (stats.new_papers, stats.merged, stats.upgraded) == (0, 1, 1)
    with transaction(engine) as session:
        paper = session.scalars(select(PaperRow).where(PaperRow.arxiv_id == "2608.18602")).one()
    assert (paper.venue, paper.year, paper.authors) == (
        "WACV",
        2027,
        ["Kai Van Brunt", "Justin Kay", "Sara Beery"],
    )


def test_a_doi_field_that_repeats_its_doi_gives_that_doi(engine: Engine) -> None:
    # The real cs.CV feed of 2024-06-11 gives 2406.03645 the DOI field "10.1109/JSTARS.2024.
    # 3413003 10.1109/JSTARS.2024.3413003 10.1109/JSTARS.2024.3413003". Kept whole, it was a
    # DOI no other record has, and the journal's own record of the paper stayed apart.
    from vpt_tracker.sources.arxiv_rss import parse_feed

    feed = parse_feed((FIXTURES / "ingest" / "rss" / "2024-06-12-cs-cv.xml").read_bytes(), "cs.CV")
    (sea_ice,) = [r for r in feed.records if r.arxiv_id == "2406.03645"]
    assert sea_ice.doi == "10.1109/jstars.2024.3413003"
    assert normalize.doi("10.1/a 10.1/b") == "10.1/a" and normalize.doi("10.1/a, 10.1/b") == "10.1/a"
    ingest_records(engine, [sea_ice])
    journal = RawRecord(
        source="catalogue",
        source_id="synthetic:sea-ice",
        title="Partial Label Learning With Focal Loss for Sea Ice Classification",
        doi="https://doi.org/10.1109/JSTARS.2024.3413003",
        venue="IEEE JSTARS",
        year=2024,
    )
    stats = ingest_records(engine, [journal])
    assert (stats.new_papers, stats.merged, stats.upgraded) == (0, 1, 1)
    (paper,) = papers(engine)
    assert (paper.arxiv_id, paper.doi, paper.venue) == (
        "2406.03645",
        "10.1109/jstars.2024.3413003",
        "IEEE JSTARS",
    )


def test_pages_reuse_the_identity_index_while_the_store_is_unchanged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = []
    # mypy types the bound classmethod as a plain Callable, which has no __func__.
    real_load = IdentityIndex.load.__func__  # type: ignore[attr-defined]

    def counting_load(cls: type[IdentityIndex], session: object) -> IdentityIndex:
        loads.append(1)
        return real_load(cls, session)

    monkeypatch.setattr(IdentityIndex, "load", classmethod(counting_load))
    records = read_corpus_jsonl(CORPUS[0])
    for number, start in enumerate(range(0, 60, 20)):
        with transaction(engine) as session:
            ingest_page(session, page(records[start : start + 20], str(number)))
    assert len(loads) == 1
    ingest_records(engine, records[60:70])  # the store is as the pages left it: it goes on from there
    with transaction(engine) as session:
        stats = ingest_page(session, page(records[60:80], "3"))
    assert len(loads) == 1
    assert stats.duplicate_sightings == 10 and stats.new_papers == len({r.arxiv_id for r in records[70:80]})
    ingest_records(engine, records[80:90], index=IdentityIndex())  # a writer the cache does not see
    with transaction(engine) as session:
        ingest_page(session, page(records[80:100], "4"))
    assert len(loads) == 2  # the cached index was stale: loaded afresh
    assert count(engine, PaperRow) == len({r.arxiv_id for r in records[:100]})


def test_a_page_rolled_back_after_ingest_page_leaves_no_trace_in_the_next(engine: Engine) -> None:
    records = read_corpus_jsonl(CORPUS[0])[:10]
    with pytest.raises(RuntimeError), transaction(engine) as session:
        ingest_page(session, page(records, "lost"))
        raise RuntimeError("the caller fails after the page was stored")
    assert count(engine, PaperRow) == 0
    with transaction(engine) as session:
        stats = ingest_page(session, page(records, "kept"))
        assert read_cursors(session, "arxiv_rss") == {"cs.CV": "kept"}
    # Had the index of the rolled-back page been reused, these would "merge" into papers
    # that do not exist.
    assert stats.new_papers == len({r.arxiv_id for r in records}) == count(engine, PaperRow)


OVERSIZED: dict[str, Any] = {
    "doi": "10.1000/" + "x" * 300,
    "openreview_id": "https://openreview.net/forum?id=" + "a" * 100,
    "cvf_url": "https://openaccess.thecvf.com/content/CVPR2023/html/" + "X" * 600 + "_paper.html",
    "primary_category": "cs." + "Q" * 60,
    "arxiv_id": "a" * 40 + "/1234567",  # the shape of an old-style id ("hep-th/9901001")
}


@pytest.mark.parametrize("field", list(OVERSIZED))
def test_an_identifier_longer_than_any_real_one_is_no_key_and_never_fails_the_batch(
    engine: Engine, field: str
) -> None:
    # Before, each of these failed the whole page on PostgreSQL (the column's size) and was
    # kept on SQLite. A real record carries the broken value, then another real record.
    first, second = read_corpus_jsonl(CORPUS[0])[:2]
    # (without its abs and PDF links, where a real arXiv id would be found instead)
    broken = replace(first, abs_url=None, pdf_url=None, **{field: OVERSIZED[field]})
    stats = ingest_records(engine, [broken, second])
    assert (stats.new_papers, stats.new_sightings) == (2, 2)
    with transaction(engine) as session:
        paper = session.scalars(select(PaperRow).where(PaperRow.title == first.title))
        assert getattr(paper.one(), field) is None
        payloads = [row.payload for row in session.scalars(select(SightingRow))]
    assert OVERSIZED[field] in json.dumps(payloads)  # the sighting keeps what the source said


def test_real_categories_and_old_style_ids_are_kept() -> None:
    for category in [
        "cs.CV",
        "eess.IV",
        "q-bio.NC",
        "cond-mat.stat-mech",
        "astro-ph.CO",
        "hep-th",
        "stat.ML",
    ]:
        assert normalize.arxiv_category(category) == category
    assert [normalize.arxiv_id(i) for i in ["hep-th/9901001v2", "math.GT/0309136", "cond-mat/0101001"]] == [
        "hep-th/9901001",
        "math/0309136",  # the subject class is not part of the id (the API answers math/0309136)
        "cond-mat/0101001",
    ]
    for junk in ["68T07, 68T45", "I.2.10; I.4.8", "N/A", "", "cs." + "Q" * 60]:
        assert normalize.arxiv_category(junk) is None


@pytest.mark.parametrize("year", [10**12, -5, 0])
def test_a_year_that_is_no_year_is_ignored(engine: Engine, year: int) -> None:
    # 10**12 failed its page on PostgreSQL (an int4 column); the arXiv id still gives a year.
    (first,) = read_corpus_jsonl(CORPUS[0])[:1]
    stats = ingest_records(engine, [replace(first, venue="CVPR", year=year)])
    assert stats.new_papers == 1
    assert [(p.venue, p.year) for p in papers(engine)] == [("CVPR", 2025)]
