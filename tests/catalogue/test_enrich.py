"""`catalogue enrich` on real lists whose links point at another paper (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from vpt_tracker import enrich
from vpt_tracker.catalogue.service import import_catalogue
from vpt_tracker.dumps import read_conference_index
from vpt_tracker.enrich import LocalIndex, enrich_catalogue
from vpt_tracker.ingest import ingest_records
from vpt_tracker.models import RawRecord
from vpt_tracker.store import session_factory
from vpt_tracker.store.tables import (
    CandidateRow,
    CatalogueRow,
    DecisionRow,
    EntryRow,
    IdentityGenerationRow,
    PaperRow,
    SightingRow,
)

LISTS = Path(__file__).parents[1] / "fixtures" / "lists"
ZHENG = LISTS / "zhengli97__Awesome-Prompt-Adapter-Learning-for-VLMs__README.md"
PROMPT_ADAPTATION = LISTS / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README.md"
SYNBOL = LISTS / "synbol__Awesome-Parameter-Efficient-Transfer-Learning__README.md"
ICCV2023 = Path(__file__).parents[1] / "fixtures" / "ingest" / "conferences" / "ICCV2023.json"

# The real arXiv titles and ids; the abstracts are stand-ins, not the papers' own.
COOP = RawRecord(
    source="jsonl",
    source_id="2109.01134",
    title="Learning to Prompt for Vision-Language Models",
    abstract="(stand-in abstract of CoOp)",
    authors=("Kaiyang Zhou", "Jingkang Yang", "Chen Change Loy", "Ziwei Liu"),
    arxiv_id="2109.01134",
)
COCOOP = RawRecord(
    source="jsonl",
    source_id="2203.05557",
    title="Conditional Prompt Learning for Vision-Language Models",
    abstract="(stand-in abstract of CoCoOp)",
    authors=("Kaiyang Zhou", "Jingkang Yang", "Chen Change Loy", "Ziwei Liu"),
    arxiv_id="2203.05557",
)


def linked(engine: Engine, title: str) -> list[PaperRow]:
    """The papers the entries of that title are linked to, in list order."""
    with session_factory(engine)() as session:
        rows = session.scalars(
            select(PaperRow)
            .join(EntryRow, EntryRow.paper_id == PaperRow.id)
            .where(EntryRow.title == title)
            .order_by(EntryRow.position)
        ).all()
        session.expunge_all()
        return list(rows)


def test_an_entry_whose_link_names_another_paper_is_matched_by_its_title(engine: Engine) -> None:
    # zhengli97 lists CoOp ("Learning to Prompt for Vision-Language Models", IJCV 2022) with
    # CoCoOp's arXiv link. Enrichment took the link at its word: the CoOp entry got CoCoOp's
    # abstract, and its sighting ("IJCV 2022") moved CoCoOp, a CVPR 2022 paper, to IJCV.
    # CoOp itself, in the same dump, was never matched.
    import_catalogue(engine, "z", ZHENG.read_text(encoding="utf-8"), preset="generalizable-vlm")
    stats = enrich_catalogue(engine, "z", local=LocalIndex([COCOOP, COOP]))
    assert stats.matched_local == 2 and stats.wrong_links == 1

    (coop,) = linked(engine, COOP.title)
    assert (coop.arxiv_id, coop.abstract, coop.venue, coop.year) == (
        "2109.01134",
        COOP.abstract,
        "IJCV",
        2022,
    )
    (cocoop,) = linked(engine, COCOOP.title)
    assert (cocoop.arxiv_id, cocoop.abstract, cocoop.venue, cocoop.year) == (
        "2203.05557",
        COCOOP.abstract,
        "CVPR",
        2022,
    )

    again = enrich_catalogue(engine, "z", local=LocalIndex([COCOOP, COOP]))
    assert (again.linked, again.ingest.new_papers, again.ingest.new_sightings) == (0, 0, 0)


def test_a_wrong_link_does_not_join_the_stored_paper_it_names(engine: Engine) -> None:
    # CoCoOp already in the store as a preprint (a nightly arXiv fetch), no dump at hand:
    # the CoOp entry's sighting carried CoCoOp's id and upgraded it to "IJCV 2022".
    ingest_records(engine, [COCOOP])
    import_catalogue(engine, "z", ZHENG.read_text(encoding="utf-8"), preset="generalizable-vlm")
    stats = enrich_catalogue(engine, "z", local=LocalIndex([]))
    assert stats.wrong_links == 1
    (coop,) = linked(engine, COOP.title)
    (cocoop,) = linked(engine, COCOOP.title)
    assert coop.id != cocoop.id and coop.arxiv_id is None
    assert (cocoop.arxiv_id, cocoop.venue, cocoop.year) == ("2203.05557", "CVPR", 2022)


def test_two_entries_sharing_a_link_are_not_made_one_paper(engine: Engine) -> None:
    # No dump, no arXiv and no stored paper knows 2203.05557: CoOp's entry (with CoCoOp's
    # link) and CoCoOp's own were both ingested under that id, so they became one paper, and
    # the CoOp entry's "IJCV 2022" sighting gave CoCoOp that venue. `catalogue check` calls
    # the pair `same-link`: the list contradicts itself, so neither link is taken on trust.
    import_catalogue(engine, "z", ZHENG.read_text(encoding="utf-8"), preset="generalizable-vlm")
    stats = enrich_catalogue(engine, "z", local=LocalIndex([]))
    assert stats.wrong_links == 2
    (coop,) = linked(engine, COOP.title)
    (cocoop,) = linked(engine, COCOOP.title)
    assert coop.id != cocoop.id
    assert coop.title == COOP.title and cocoop.title == COCOOP.title
    assert (coop.venue, coop.year) == ("IJCV", 2022)


def stand_in(arxiv_id: str, title: str) -> RawRecord:
    """A dump record with a paper's real arXiv id and title, and a stand-in abstract."""
    return RawRecord(
        source="jsonl", source_id=arxiv_id, title=title, abstract="(stand-in)", arxiv_id=arxiv_id
    )


NAMED = [
    stand_in("2203.12119", "Visual Prompt Tuning"),
    stand_in("2307.13770", "E^2VPT: An Effective and Efficient Approach for Visual Prompt Tuning"),
    stand_in("2210.01033", "LPT: Long-tailed Prompt Tuning for Image Classification"),
    stand_in("2203.17274", "Exploring Visual Prompts for Adapting Large-Scale Models"),
    stand_in("2307.12980", "A Systematic Survey of Prompt Engineering on Vision-Language Foundation Models"),
]


def test_names_and_shortened_titles_are_no_wrong_links(engine: Engine) -> None:
    # prompt-adaptation names papers ("VPT", "E2VPT") and shortens titles ("Exploring Visual
    # Prompts", "Prompt Engineering on Vision-Language Models"): their links are right.
    import_catalogue(engine, "pa", PROMPT_ADAPTATION.read_text(encoding="utf-8"), preset="prompt-adaptation")
    stats = enrich_catalogue(engine, "pa", local=LocalIndex(NAMED))
    assert (stats.wrong_links, stats.matched_local) == (0, 5)
    for title, arxiv_id in [
        ("VPT", "2203.12119"),
        ("E2VPT", "2307.13770"),
        ("LPT", "2210.01033"),
        ("Exploring Visual Prompts", "2203.17274"),
        ("Prompt Engineering on Vision-Language Models", "2307.12980"),
    ]:
        assert [(p.arxiv_id, p.abstract) for p in linked(engine, title)] == [(arxiv_id, "(stand-in)")], title


def test_an_entry_written_without_the_superscript_finds_the_record_written_with_it(engine: Engine) -> None:
    # synbol lists "E2VPT: An Effective and Efficient Approach for Visual Prompt Tuning" (ICCV
    # 2023); CVF's index names it "E^2VPT: …" and gives no arXiv id. The two titles folded to
    # "e2vpt …" and "e 2vpt …", so the entry found no record and got no abstract.
    import_catalogue(engine, "s", SYNBOL.read_text(encoding="utf-8"), preset=None)
    iccv = list(read_conference_index(ICCV2023))
    (cvf,) = [record for record in iccv if record.title.startswith("E^2VPT")]
    enrich_catalogue(engine, "s", local=LocalIndex(iccv))
    (paper,) = linked(engine, "E2VPT: An Effective and Efficient Approach for Visual Prompt Tuning")
    assert (paper.abstract, paper.cvf_url, paper.arxiv_id) == (cvf.abstract, cvf.cvf_url, "2307.13770")
    assert (paper.venue, paper.year) == ("ICCV", 2023)


def test_the_older_list_linking_two_rows_to_one_other_paper(engine: Engine) -> None:
    # Before the maintainer fixed them (2025-10-20), "Visual Prompting via Inpainting" and
    # "VPT" both linked 2203.17274, "Exploring Visual Prompts ...": both rows got its abstract.
    older = LISTS / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-10-20.md"
    import_catalogue(engine, "pa", older.read_text(encoding="utf-8"), preset="prompt-adaptation")
    stats = enrich_catalogue(engine, "pa", local=LocalIndex(NAMED))
    assert stats.wrong_links == 2
    for title in ("VPT", "Visual Prompting via Inpainting"):
        assert [p.arxiv_id for p in linked(engine, title)] == [None], title
    assert [p.arxiv_id for p in linked(engine, "E2VPT")] == ["2307.13770"]


class ArxivAnswers:
    """What arXiv answers (the `ArxivLookup` protocol), from the records above; no HTTP here,
    the recorded-server path of `fetch_ids`/`search_title` is tested in tests/ingest."""

    def __init__(self, records: list[RawRecord]) -> None:
        self.records = records
        self.searched: list[str] = []

    def fetch_ids(self, ids: list[str]) -> list[RawRecord]:
        return [r for r in self.records if r.arxiv_id in ids]

    def search_title(self, title: str, limit: int = 10) -> list[RawRecord]:
        self.searched.append(title)
        return [r for r in self.records if r.title == title][:limit]


def test_on_arxiv_a_wrong_link_is_searched_by_title(engine: Engine) -> None:
    # Both zhengli97 entries link 2203.05557; only the last one of them got arXiv's answer.
    import_catalogue(engine, "z", ZHENG.read_text(encoding="utf-8"), preset="generalizable-vlm")
    answers = ArxivAnswers([COCOOP, COOP])
    stats = enrich_catalogue(engine, "z", arxiv=answers, max_title_searches=200)
    assert stats.wrong_links == 1 and COOP.title in answers.searched
    assert [p.arxiv_id for p in linked(engine, COOP.title)] == ["2109.01134"]
    assert [(p.arxiv_id, p.venue) for p in linked(engine, COCOOP.title)] == [("2203.05557", "CVPR")]


ECCV2022 = Path(__file__).parents[1] / "fixtures" / "ingest" / "conferences" / "ECCV2022.json"
TTENGWANG = LISTS / "ttengwang__Awesome_Prompting_Papers_in_Computer_Vision__README@2022-09-30.md"


def eccv_vpt() -> RawRecord:
    """ECCV's real record of "Visual Prompt Tuning": an abstract, no arXiv id, no CVF URL."""
    (record,) = [r for r in read_conference_index(ECCV2022) if r.title == "Visual Prompt Tuning"]
    assert record.abstract and record.arxiv_id is None
    return record


def generation(engine: Engine) -> int:
    with session_factory(engine)() as session:
        return session.scalars(select(IdentityGenerationRow.generation)).one()


def sightings_of(engine: Engine, paper_id: int) -> list[tuple[str, str]]:
    with session_factory(engine)() as session:
        rows = session.execute(
            select(SightingRow.source, SightingRow.source_id).where(SightingRow.paper_id == paper_id)
        ).all()
        return sorted((source, source_id) for source, source_id in rows)


def test_a_match_that_became_a_paper_of_its_own_is_merged_into_the_entrys(engine: Engine) -> None:
    # prompt-adaptation lists VPT as "VPT" (2203.12119); enriched with nothing to match, its
    # paper is "VPT" with the arXiv id and no abstract. ttengwang lists "Visual Prompt Tuning"
    # with the same link, and ECCV's index has it (no arXiv id). The ECCV record became a
    # paper of its own, the entry's sighting went to "VPT" by its arXiv id, and the entry
    # stayed without the abstract it was matched to; every rerun said "1 matched in dumps".
    import_catalogue(engine, "pa", PROMPT_ADAPTATION.read_text(encoding="utf-8"), preset="prompt-adaptation")
    enrich_catalogue(engine, "pa", local=LocalIndex([]))
    (vpt,) = linked(engine, "VPT")
    assert (vpt.arxiv_id, vpt.abstract) == ("2203.12119", "")
    before = generation(engine)

    import_catalogue(engine, "tt", TTENGWANG.read_text(encoding="utf-8"), preset="awesome-vpt")
    record = eccv_vpt()
    stats = enrich_catalogue(engine, "tt", local=LocalIndex([record]))
    assert (stats.matched_local, stats.joined) == (1, 1)
    (paper,) = linked(engine, "Visual Prompt Tuning")
    assert [p.id for p in linked(engine, "VPT")] == [paper.id] == [vpt.id]
    assert (paper.arxiv_id, paper.abstract, paper.venue, paper.year) == (
        "2203.12119",
        record.abstract,
        "ECCV",
        2022,
    )
    assert ("conference-index", record.source_id) in sightings_of(engine, paper.id)
    with session_factory(engine)() as session:
        query = select(PaperRow.title).where(PaperRow.title_key == "visual prompt tuning")
        titles = session.scalars(query).all()
    assert titles == []  # the ECCV record's own paper is gone (merged), not a duplicate
    assert generation(engine) > before  # identity indexes kept elsewhere are retired

    again = enrich_catalogue(engine, "tt", local=LocalIndex([record]))
    assert (again.matched_local, again.joined, again.linked) == (0, 0, 0)
    assert (again.ingest.new_papers, again.ingest.new_sightings) == (0, 0)
    assert [p.id for p in linked(engine, "Visual Prompt Tuning")] == [vpt.id]


def test_a_store_where_the_match_is_already_a_paper_of_its_own_is_repaired(engine: Engine) -> None:
    # ECCV2022.json loaded by `ingest-jsonl` (or by an enrichment before this fix): "Visual
    # Prompt Tuning" is a stored paper without an arXiv id. Enriching the entry finds its
    # record stored there; that paper is merged into the entry's.
    record = eccv_vpt()
    ingest_records(engine, [record])
    import_catalogue(engine, "pa", PROMPT_ADAPTATION.read_text(encoding="utf-8"), preset="prompt-adaptation")
    enrich_catalogue(engine, "pa", local=LocalIndex([]))
    import_catalogue(engine, "tt", TTENGWANG.read_text(encoding="utf-8"), preset="awesome-vpt")
    stats = enrich_catalogue(engine, "tt", local=LocalIndex([record]))
    assert stats.joined == 1 and stats.ingest.duplicate_sightings >= 1
    (paper,) = linked(engine, "VPT")
    assert (paper.arxiv_id, paper.abstract) == ("2203.12119", record.abstract)
    assert [p.id for p in linked(engine, "Visual Prompt Tuning")] == [paper.id]
    again = enrich_catalogue(engine, "tt", local=LocalIndex([record]))
    assert (again.joined, again.linked, again.ingest.new_papers, again.ingest.new_sightings) == (0, 0, 0, 0)


class FetchedIds(ArxivAnswers):
    """`ArxivAnswers` that also notes the ids asked for."""

    def __init__(self, records: list[RawRecord]) -> None:
        super().__init__(records)
        self.fetched: list[str] = []

    def fetch_ids(self, ids: list[str]) -> list[RawRecord]:
        self.fetched.extend(ids)
        return super().fetch_ids(ids)


def test_a_dump_match_without_an_abstract_still_asks_arxiv(engine: Engine) -> None:
    # A conference index entry without its abstract (stand-in: ECCV's record with the
    # abstract taken out) matches "Visual Prompt Tuning"; arXiv is still asked for it.
    no_abstract = replace(eccv_vpt(), abstract="")
    arxiv = stand_in("2203.12119", "Visual Prompt Tuning")
    import_catalogue(engine, "tt", TTENGWANG.read_text(encoding="utf-8"), preset="awesome-vpt")
    answers = FetchedIds([arxiv])
    local = LocalIndex([no_abstract])
    stats = enrich_catalogue(engine, "tt", local=local, arxiv=answers, max_title_searches=0)
    assert "2203.12119" in answers.fetched and stats.matched_arxiv >= 1
    (paper,) = linked(engine, "Visual Prompt Tuning")
    assert (paper.arxiv_id, paper.abstract, paper.venue) == ("2203.12119", "(stand-in)", "ECCV")


def test_a_match_whose_paper_contradicts_the_entrys_is_not_merged(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # Synthetic: a stored "Visual Prompt Tuning" under another arXiv id (a stand-in with ECCV's
    # authors, so ECCV's record joins it) and the "VPT" paper of the entry's link. `papers
    # merge` refuses the pair (two arXiv ids); enrichment warns and leaves both as they are.
    eccv = eccv_vpt()
    other = replace(stand_in("2301.00001", "Visual Prompt Tuning"), authors=eccv.authors)
    ingest_records(engine, [other, replace(stand_in("2203.12119", "VPT"), abstract="")])
    import_catalogue(engine, "tt", TTENGWANG.read_text(encoding="utf-8"), preset="awesome-vpt")
    with caplog.at_level("WARNING", logger="vpt_tracker.enrich"):
        stats = enrich_catalogue(engine, "tt", local=LocalIndex([eccv]))
    assert (stats.matched_local, stats.joined) == (1, 0)
    assert stats.unmatched == stats.entries  # this entry too: its paper has no abstract
    assert "its match stays paper" in caplog.text and "cannot merge" in caplog.text
    (paper,) = linked(engine, "Visual Prompt Tuning")
    assert (paper.title, paper.arxiv_id, paper.abstract) == ("VPT", "2203.12119", "")
    with session_factory(engine)() as session:
        kept = session.scalars(select(PaperRow).where(PaperRow.arxiv_id == "2301.00001")).one()
        assert kept.abstract == "(stand-in)"
        assert ("conference-index", eccv.source_id) in sightings_of(engine, kept.id)


NAMED_ICLR2023 = Path(__file__).parents[1] / "fixtures" / "ingest" / "named" / "ICLR2023.json"
JINDONG = LISTS / "JindongGu__Awesome-Prompting-on-Vision-Language-Model__README.md"
MDM = "MDM: Human Motion Diffusion Model"


def import_mdm(engine: Engine) -> None:
    """JindongGu's row of MDM (verbatim, no link) under a hand-written table heading."""
    (row,) = [line for line in JINDONG.read_text(encoding="utf-8").splitlines() if f"[{MDM}]" in line]
    heading = "# Papers\n\n| Title | Venue | Year | Code if available | Comment |\n" + "| --- " * 5 + "|\n"
    import_catalogue(engine, "jindong", heading + row + "\n", preset=None)


def papers(engine: Engine) -> list[tuple[int, str]]:
    with session_factory(engine)() as session:
        rows = session.execute(select(PaperRow.id, PaperRow.title).order_by(PaperRow.id)).all()
        return [(paper_id, title) for paper_id, title in rows]


@pytest.mark.parametrize("stored_first", [False, True], ids=["enriched-first", "index-stored-first"])
def test_a_paper_an_entry_leaves_made_of_its_own_sighting_is_merged_into_its_new_one(
    engine: Engine, stored_first: bool
) -> None:
    # The audit's case: JindongGu's "MDM: Human Motion Diffusion Model" (no link) enriched when
    # nothing matched it became a paper of its own sighting. Matched on a rerun to ICLR 2023's
    # "Human Motion Diffusion Model" (a leading name), its new sighting carried the record's
    # OpenReview id and went to the record's paper; the entry followed and left its first paper
    # behind, linked to nothing, until `papers merge NEW OLD`.
    iclr = list(read_conference_index(NAMED_ICLR2023))
    if stored_first:
        ingest_records(engine, iclr)  # `ingest-jsonl ICLR2023.json` before the list was enriched
    import_mdm(engine)
    enrich_catalogue(engine, "jindong", local=LocalIndex([]))
    (old,) = linked(engine, MDM)
    assert old.openreview_id is None and len(papers(engine)) == 1 + stored_first

    stats = enrich_catalogue(engine, "jindong", local=LocalIndex(iclr))
    assert (stats.linked, stats.rejoined, stats.left_behind) == (1, 1, [])
    (paper,) = linked(engine, MDM)
    assert paper.id != old.id and paper.openreview_id == "SJ1kSyO2jwu"
    assert (paper.venue, paper.year) == ("ICLR", 2023)
    # The paper keeps its first title ("A paper keeps its first title", see the README's Limits).
    assert papers(engine) == [(paper.id, MDM if not stored_first else "Human Motion Diffusion Model")]
    assert sightings_of(engine, paper.id) == [
        ("catalogue", "jindong:mdm human motion diffusion model"),  # the first, left behind before
        ("catalogue", "jindong:mdm human motion diffusion model"),  # with the record's OpenReview id
        ("conference-index", "https://openreview.net/forum?id=SJ1kSyO2jwu"),
    ]

    again = enrich_catalogue(engine, "jindong", local=LocalIndex(iclr))  # it has no abstract: retried
    assert (again.linked, again.joined, again.rejoined, again.left_behind) == (0, 0, 0, [])
    assert (again.ingest.new_papers, again.ingest.new_sightings) == (0, 0)
    assert [p.id for p in linked(engine, MDM)] == [paper.id] and len(papers(engine)) == 1


def test_a_store_an_earlier_version_left_with_the_paper_behind_is_repaired(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The audit's store: the entry already moved to the record's paper by an earlier version
    # (which left the papers behind where they were), its first paper linked to nothing. The
    # next enrichment of the entry merges it.
    iclr = list(read_conference_index(NAMED_ICLR2023))
    import_mdm(engine)
    enrich_catalogue(engine, "jindong", local=LocalIndex([]))
    (old,) = linked(engine, MDM)
    with monkeypatch.context() as patch:
        patch.setattr(enrich, "_rejoin_left", lambda *args: False)  # the earlier version
        enrich_catalogue(engine, "jindong", local=LocalIndex(iclr))
    (paper,) = linked(engine, MDM)
    assert [p for p, _ in papers(engine)] == [old.id, paper.id]

    stats = enrich_catalogue(engine, "jindong", local=LocalIndex(iclr))
    assert (stats.linked, stats.rejoined, stats.ingest.new_sightings) == (0, 1, 0)
    assert papers(engine) == [(paper.id, MDM)]
    assert len(sightings_of(engine, paper.id)) == 3


def add_rejected_candidate(engine: Engine, paper_id: int) -> None:
    """A reviewer's rejection of the paper for another list (a candidate and its decision)."""
    with session_factory(engine)() as session, session.begin():
        other = CatalogueRow(name="vlm", source_text="# list\n", source_sha256="0" * 64)
        session.add(other)
        session.flush()
        candidate = CandidateRow(paper_id=paper_id, catalogue_id=other.id, status="rejected")
        session.add(candidate)
        session.flush()
        session.add(
            DecisionRow(
                candidate_id=candidate.id,
                reviewer="ana",
                action="reject",
                before={"status": "pending", "version": 0},
                after={"status": "rejected", "version": 1},
            )
        )


def source_sighting(engine: Engine, paper_id: int) -> int:
    """The id of the paper's one sighting that is not a catalogue's."""
    with session_factory(engine)() as session:
        return session.scalars(
            select(SightingRow.id).where(SightingRow.paper_id == paper_id, SightingRow.source != "catalogue")
        ).one()


@pytest.mark.parametrize("holds", ["record", "candidate"])
def test_a_paper_an_entry_leaves_that_holds_more_is_reported_not_merged(
    engine: Engine, holds: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The paper the entry leaves holds more than its sighting: a record of another source (a
    # stand-in of arXiv's: MDM's real id and title) or a reviewer's rejection. It may be
    # another paper the entry was linked to by mistake: not merged, but named with the
    # `papers merge` that would join the two.
    iclr = list(read_conference_index(NAMED_ICLR2023))
    import_mdm(engine)
    enrich_catalogue(engine, "jindong", local=LocalIndex([]))
    (old,) = linked(engine, MDM)
    if holds == "record":
        # Without an abstract: with one, the entry would be complete and left alone.
        arxiv = replace(stand_in("2209.14916", MDM), abstract="", authors=("Guy Tevet", "Sigal Raab"))
        assert ingest_records(engine, [arxiv]).merged == 1
        expected = [f"sighting {source_sighting(engine, old.id)} of jsonl"]
    else:
        add_rejected_candidate(engine, old.id)
        expected = ["candidate 1 of 'vlm' (rejected)"]

    with caplog.at_level("WARNING", logger="vpt_tracker.enrich"):
        stats = enrich_catalogue(engine, "jindong", local=LocalIndex(iclr))
    (paper,) = linked(engine, MDM)
    assert paper.id != old.id and stats.rejoined == 0
    (left,) = stats.left_behind
    assert (left.paper_id, left.left_id, left.line, left.title) == (paper.id, old.id, 5, MDM)
    assert left.holds == expected
    assert left.merge_command() == f"vpt-tracker papers merge {paper.id} {old.id}"
    assert left.as_dict()["merge"] == left.merge_command()
    assert f"`vpt-tracker papers merge {paper.id} {old.id}`" in caplog.text
    assert [p for p, _ in papers(engine)] == [old.id, paper.id]  # both stay

    caplog.clear()
    with caplog.at_level("WARNING", logger="vpt_tracker.enrich"):
        again = enrich_catalogue(engine, "jindong", local=LocalIndex(iclr))
    assert (again.linked, again.rejoined, again.ingest.new_sightings) == (0, 0, 0)
    assert [r.left_id for r in again.left_behind] == [old.id]  # still told, on every rerun
    assert f"papers merge {paper.id} {old.id}" in caplog.text


def test_a_failure_after_the_relink_leaves_the_store_as_it_was(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The relink and the merge are one transaction: a crash between them leaves neither (the
    # entry on its first paper, no new sighting), and the rerun does both.
    iclr = list(read_conference_index(NAMED_ICLR2023))
    import_mdm(engine)
    enrich_catalogue(engine, "jindong", local=LocalIndex([]))
    (old,) = linked(engine, MDM)

    def crash(session: object, keep_id: int, other_id: int) -> None:
        raise RuntimeError("killed between the relink and the merge")

    with monkeypatch.context() as patch:
        patch.setattr(enrich, "merge_papers", crash)
        with pytest.raises(RuntimeError, match="killed"):
            enrich_catalogue(engine, "jindong", local=LocalIndex(iclr))
    assert [p.id for p in linked(engine, MDM)] == [old.id] and papers(engine) == [(old.id, MDM)]
    assert len(sightings_of(engine, old.id)) == 1

    stats = enrich_catalogue(engine, "jindong", local=LocalIndex(iclr))
    assert (stats.linked, stats.rejoined) == (1, 1)
    (paper,) = linked(engine, MDM)
    assert papers(engine) == [(paper.id, MDM)]


def test_a_paper_an_entry_leaves_that_papers_merge_refuses_is_reported(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # zhengli97's CoOp row with CoCoOp's link, enriched when nothing knew the id: its paper is
    # "Learning to Prompt …" under 2203.05557. A dump then shows the link wrong, and the entry
    # moves to CoOp's paper (2109.01134); the paper it leaves holds the other arXiv id, which
    # `papers merge` refuses: it stays, and the refusal is told.
    lines = ZHENG.read_text(encoding="utf-8").splitlines()
    (at,) = [i for i, line in enumerate(lines) if f"**{COOP.title}.**" in line]
    import_catalogue(
        engine, "z", "\n".join(["# Papers", "", *lines[at : at + 2], ""]), preset=None
    )  # verbatim
    enrich_catalogue(engine, "z", local=LocalIndex([]))
    (old,) = linked(engine, COOP.title)
    assert old.arxiv_id == "2203.05557"
    with caplog.at_level("WARNING", logger="vpt_tracker.enrich"):
        stats = enrich_catalogue(engine, "z", local=LocalIndex([COCOOP, COOP]))
    (paper,) = linked(engine, COOP.title)
    assert paper.arxiv_id == "2109.01134" and stats.rejoined == 0
    (left,) = stats.left_behind
    assert (left.paper_id, left.left_id, left.holds) == (paper.id, old.id, [])
    assert left.refused is not None and left.refused.startswith("cannot merge: ")
    assert left.merge_command() is None
    assert f"paper {old.id}, which it was linked to, stays: cannot merge" in caplog.text
