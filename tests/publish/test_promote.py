"""Promotion (accepted candidates -> entries), the render checks and the PR text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from vpt_tracker import normalize
from vpt_tracker.catalogue.markdown import parse
from vpt_tracker.catalogue.promote import pending_changes, promote, split_venue
from vpt_tracker.catalogue.service import get_catalogue, import_catalogue, render_catalogue
from vpt_tracker.publish.publisher import (
    SIZE_WARNING_BYTES,
    RenderCheckFailed,
    check_render,
    dry_run,
    pull_body,
)
from vpt_tracker.publish.upstream import rebase_catalogue
from vpt_tracker.review.queue import Conflict, ReviewQueue
from vpt_tracker.store import session_factory, transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, DecisionRow, EntryRow, PaperRow

from .conftest import (
    CATALOGUE,
    PROMPT_ADAPTATION,
    README_0624,
    accept,
    accept_iccv_vpt,
    accept_synbol_twice_listed_paper,
    accept_two,
    import_list,
)


def test_promotion_adds_and_upgrades_once(engine: Engine) -> None:
    import_list(engine)
    new_id, upgrade_id = accept_two(engine)
    with transaction(engine) as session:
        first = promote(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
    assert len(first.added) == 1 and len(first.updated) == 1 and first.skipped == []

    doc = parse(text)
    plot = next(e for e in doc.entries if e.arxiv_id == "2210.01253")
    assert (plot.venue, plot.year, plot.code_url) == ("ICLR", 2023, "https://github.com/CHENGY12/PLOT")
    assert plot.section_path[-2:] == ["1. Learnable Visual Prompts", "Token-Level"]
    adaptive = [e for e in doc.entries if e.arxiv_id == "2411.01327"]
    assert len(adaptive) == 1 and (adaptive[0].venue, adaptive[0].year) == ("ICML", 2025)

    with transaction(engine) as session:
        again = promote(session, CATALOGUE)
        assert render_catalogue(session, CATALOGUE) == text
        changes = pending_changes(session, CATALOGUE)
    assert (again.added, again.updated) == ([], [])
    assert [(c.action, c.candidate_id) for c in changes] == [("added", new_id), ("updated", upgrade_id)]
    assert changes[1].previous == ("arXiv", 2025)
    assert changes[0].decision is not None and changes[0].decision.reviewer == "alice"
    assert changes[0].label_scores["learnable"] == pytest.approx(0.88)
    with session_factory(engine)() as session:  # promotion never publishes
        assert {c.status for c in session.scalars(select(CandidateRow))} == {"accepted"}


def test_undone_acceptance_takes_the_entry_back_out(engine: Engine) -> None:
    import_list(engine)
    new_id, _ = accept_two(engine)
    with transaction(engine) as session:
        promote(session, CATALOGUE)
    with transaction(engine) as session:
        session.get_one(CandidateRow, new_id).status = "pending"  # the reviewer pressed undo
    with transaction(engine) as session:
        result = promote(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
    assert len(result.retracted) == 1
    assert "2210.01253" not in text and "| ICML | 2025 |" in text


def test_relabelling_a_promoted_candidate_moves_its_entry_to_the_new_section(engine: Engine) -> None:
    """A publish that failed after promotion (upstream changed, a 401) leaves the entry in the
    catalogue; a reviewer who then fixes the labels (`review relabel`, allowed until the
    paper is published) must see the entry move, not stay where the old labels put it."""
    import_list(engine)
    new_id, _ = accept_two(engine)
    with transaction(engine) as session:
        promote(session, CATALOGUE)
    ReviewQueue(engine, "alice", CATALOGUE).relabel(new_id, ["learnable", "pixel"])
    with transaction(engine) as session:
        result = promote(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
        changes = pending_changes(session, CATALOGUE)
    plot = [e for e in parse(text).entries if e.arxiv_id == "2210.01253"]
    assert len(plot) == 1
    assert plot[0].section_path[-2:] == ["1. Learnable Visual Prompts", "Pixel-Level"]
    assert len(result.added) == 1 and len(result.retracted) == 1
    assert [c.labels for c in changes if c.candidate_id == new_id] == [["learnable", "pixel"]]


def test_the_pull_request_shows_the_accept_not_a_losing_reviewers_attempt(engine: Engine) -> None:
    """Bob had the candidate on screen when alice accepted it; his reject lost the race and is
    logged as a `conflict` row (and alice's later relabel is not the decision either): the PR
    still shows alice's accept and her reason."""
    import_list(engine)
    new_id, _ = accept_two(engine)
    with pytest.raises(Conflict):
        ReviewQueue(engine, "bob", CATALOGUE).reject(new_id, "off-topic", expected_version=0)
    ReviewQueue(engine, "alice", CATALOGUE).relabel(new_id, ["learnable", "token"])
    with transaction(engine) as session:
        promote(session, CATALOGUE)
        changes = pending_changes(session, CATALOGUE)
        body = pull_body(CATALOGUE, changes)
    decision = next(c.decision for c in changes if c.candidate_id == new_id)
    assert decision is not None
    assert (decision.action, decision.reviewer, decision.reason) == (
        "accept",
        "alice",
        "optimal-transport prompts",
    )
    assert "decision: accept by alice on 2026-11-20 09:30 UTC: optimal-transport prompts" in body
    assert "conflict" not in body and "off-topic" not in body


def test_candidates_that_cannot_be_placed_are_skipped_with_a_reason(engine: Engine) -> None:
    import_list(engine)
    no_section = accept(
        engine,
        title="A Paper Without Useful Labels",
        arxiv_id="2501.00001",
        venue=None,
        year=2025,
        labels=[],
        relevance=0.6,
        label_scores={},
    )
    listed = accept(  # already in the list at a venue: nothing to add or upgrade
        engine,
        title="Visual Prompt Tuning",
        arxiv_id=None,
        venue="ECCV",
        year=2022,
        labels=["learnable", "token"],
        relevance=0.99,
        label_scores={},
    )
    with transaction(engine) as session:
        result = promote(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
    reasons = {s.candidate_id: s.reason for s in result.skipped}
    assert "no section of preset 'awesome-vpt' takes the labels []" in reasons[no_section]
    assert reasons[listed].startswith("already listed (line ")
    assert text == README_0624.read_text()


def test_a_listed_preprint_at_a_venue_now_is_upgraded_without_a_candidate(engine: Engine) -> None:
    import_list(engine)
    with transaction(engine) as session:
        title = "Visual Prompt Tuning for Test-time Domain Adaptation"
        session.add(
            PaperRow(
                title=title,
                title_key=normalize.title_key(title),
                arxiv_id="2210.04831",
                venue="WACV 2025",  # hand-picked test data
                previous_venue="arXiv",
                venue_upgraded_at=datetime(2026, 11, 1, tzinfo=UTC),
            )
        )
    with transaction(engine) as session:
        result = promote(session, CATALOGUE)
        changes = pending_changes(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
    assert len(result.updated) == 1
    row = next(line for line in text.splitlines() if "2210.04831" in line)
    assert "| WACV | 2025 | TTA, VPT |" in row
    assert changes[0].candidate_id is None and "venue changed in the sources" in pull_body(CATALOGUE, changes)


BWLONG = README_0624.parent / "BWLONG__Awesome-Prompt-Learning-CV__README.md"


def test_a_preprint_whose_venue_is_its_link_text_is_upgraded(engine: Engine) -> None:
    # BWLONG writes the venue as the paper link's text: `[[arXiv 2307](..)]`. Promotion
    # logged "keeps its venue: ... no venue text to update" and changed nothing.
    import_catalogue(engine, "bwlong", BWLONG.read_text(encoding="utf-8"), preset=None)
    with transaction(engine) as session:
        title = "Self-regulating Prompts: Foundational Model Adaptation without Forgetting"
        session.add(
            PaperRow(
                title=title,
                title_key=normalize.title_key(title),
                arxiv_id="2307.06948",
                venue="ICCV",  # the paper's real venue
                year=2023,
                previous_venue="arXiv",
                venue_upgraded_at=datetime(2026, 11, 1, tzinfo=UTC),
            )
        )
    with transaction(engine) as session:
        result = promote(session, "bwlong")
        text = render_catalogue(session, "bwlong")
    old = BWLONG.read_text(encoding="utf-8")
    assert len(result.updated) == 1
    link = "(https://arxiv.org/abs/2307.06948)]"
    assert text != old and text == old.replace(f"[[arXiv 2307]{link}", f"[[ICCV 2023]{link}")


def test_an_accepted_paper_listed_twice_is_upgraded_on_both_lines(engine: Engine) -> None:
    # synbol lists "Towards a Unified View on Visual Parameter-Efficient Transfer Learning"
    # twice (lines 432 and 693, both "Arxiv 2023"). Accepted at TMLR 2024, straight from a
    # venue source (no preprint upgrade on record), only line 432 changed: the list then
    # said TMLR 2024 and Arxiv 2023 for one paper.
    old, candidate = accept_synbol_twice_listed_paper(engine)
    with transaction(engine) as session:
        result = promote(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
        changes = pending_changes(session, CATALOGUE)
    line = "- **[2] Towards a Unified View on Visual Parameter-Efficient Transfer Learning,** {}.\n"
    assert old.count(line.format("Arxiv 2023")) == 2
    assert text == old.replace(line.format("Arxiv 2023"), line.format("TMLR 2024"))
    assert len(result.updated) == 2 and [c.candidate_id for c in changes] == [candidate, candidate]
    with transaction(engine) as session:
        again = promote(session, CATALOGUE)
    assert (again.updated, again.skipped) == ([], [])


def test_an_undone_venue_upgrade_is_reverted_on_every_line(engine: Engine) -> None:
    # The same synbol paper, accepted at TMLR 2024 straight from a venue source. Undoing the
    # accept took added entries out but left both lines "updated": the next publish still
    # proposed TMLR 2024, with no accept behind it.
    old, candidate = accept_synbol_twice_listed_paper(engine)
    with transaction(engine) as session:  # pending, as classify left it; the queue accepts it
        row = session.get_one(CandidateRow, candidate)
        row.status, row.final_labels, row.reviewer, row.decided_at = "pending", None, None, None
        for decision in session.scalars(select(DecisionRow).where(DecisionRow.candidate_id == candidate)):
            session.delete(decision)
    ReviewQueue(engine, "alice", CATALOGUE).accept(candidate)
    with transaction(engine) as session:
        assert len(promote(session, CATALOGUE).updated) == 2
    undone = ReviewQueue(engine, "alice", CATALOGUE).undo()
    assert [(item.candidate_id, item.status) for item in undone] == [(candidate, "pending")]
    with transaction(engine) as session:
        result = promote(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
        changes = pending_changes(session, CATALOGUE)
    assert len(result.retracted) == 2 and changes == [] and text == old
    with session_factory(engine)() as session:
        rows = session.scalars(select(EntryRow).where(EntryRow.arxiv_id == "2210.00788")).all()
        assert [(r.state, r.venue, r.year, r.candidate_id) for r in rows] == [
            ("imported", "Arxiv", 2023, None)
        ] * 2
        assert all("previous" not in (r.extra or {}) for r in rows)

    # Accepted again, it is upgraded again.
    ReviewQueue(engine, "alice", CATALOGUE).accept(candidate)
    with transaction(engine) as session:
        assert len(promote(session, CATALOGUE).updated) == 2
        assert render_catalogue(session, CATALOGUE).count("Learning,** TMLR 2024.") == 2


def test_an_undone_upgrade_the_sources_made_stays_without_the_accept(engine: Engine) -> None:
    # Adaptive Prompt's ICML venue came from the sources (a preprint upgrade on record): any
    # listed preprint gets such a venue, so the undone accept leaves it, with no decision.
    import_list(engine)
    _, upgrade_id = accept_two(engine)
    with transaction(engine) as session:
        promote(session, CATALOGUE)
    with transaction(engine) as session:
        session.get_one(CandidateRow, upgrade_id).status = "pending"  # the reviewer pressed undo
    with transaction(engine) as session:
        result = promote(session, CATALOGUE)
        changes = pending_changes(session, CATALOGUE)
    assert len(result.retracted) == 1 and len(result.updated) == 1
    update = next(c for c in changes if c.action == "updated")
    assert (update.venue, update.candidate_id) == ("ICML", None)
    assert "venue changed in the sources" in pull_body(CATALOGUE, changes)


def test_a_listed_survey_with_blank_venue_cells_is_upgraded_and_undone(engine: Engine) -> None:
    # awesome-vpt's Related Surveys rows leave Venue and Year blank. An accepted venue for
    # one (IJCV 2025: hand-picked test data) was skipped at every publish with "no venue text
    # to update", and the pull request never proposed it.
    import_list(engine)
    old = README_0624.read_text()
    candidate = accept(
        engine,
        title="A Systematic Survey of Prompt Engineering on Vision-Language Foundation Models",
        arxiv_id="2307.12980",
        venue="IJCV",
        year=2025,
        labels=["survey"],
        relevance=0.9,
        label_scores={"survey": 0.9},
    )  # straight from a venue source: no preprint upgrade on record, so undo reverts it
    with transaction(engine) as session:
        result = promote(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
        changes = pending_changes(session, CATALOGUE)
    assert result.skipped == [] and [(c.action, c.candidate_id) for c in changes] == [("updated", candidate)]
    row = next(e for e in parse(old).entries if e.arxiv_id == "2307.12980")
    upgraded = row.raw.replace(")      |       |      |", ")      | IJCV  | 2025 |", 1)
    assert text == old.replace(row.raw, upgraded)
    assert check_render(old, text, changes) == []

    with transaction(engine) as session:
        session.get_one(CandidateRow, candidate).status = "pending"  # the reviewer pressed undo
    with transaction(engine) as session:
        assert len(promote(session, CATALOGUE).retracted) == 1
        assert render_catalogue(session, CATALOGUE) == old


def test_render_checks_refuse_lost_entries_and_warn_on_size() -> None:
    old = README_0624.read_text()
    row = next(e for e in parse(old).entries if e.arxiv_id == "2411.01327")
    with pytest.raises(RenderCheckFailed, match="would lose 1 entries"):
        check_render(old, old.replace(row.raw, ""), [])
    assert check_render(old, old, []) == []
    huge = old + "<!-- " + "x" * SIZE_WARNING_BYTES + " -->\n"
    warnings = check_render(old, huge, [])
    assert len(warnings) == 1 and "512 kB" in warnings[0]


def test_pull_body_keeps_untrusted_titles_inert(engine: Engine) -> None:
    import_list(engine)
    accept(
        engine,
        title="Prompts <script>alert(1)</script> | [click](javascript:x) *bold*",
        arxiv_id="2502.00002",
        venue="CVPR",
        year=2025,
        labels=["learnable", "pixel"],
        relevance=0.7,
        label_scores={},
        reason="looks\nfine",
    )
    with transaction(engine) as session:
        promote(session, CATALOGUE)
        body = pull_body(CATALOGUE, pending_changes(session, CATALOGUE))
    assert "<script>" not in body and "\\<script\\>" in body
    assert "\\[click\\](javascript:x)" in body and "\\*bold\\*" in body
    assert ": looks fine" in body


def test_a_title_with_markdown_characters_passes_the_render_check_and_reads_back(engine: Engine) -> None:
    title = "Prompting [CLS] Tokens | `Fast` *and* _Cheap_ <Mostly> ]"
    import_list(engine)
    accept(
        engine,
        title=title,
        arxiv_id="2502.00003",
        venue="CVPR",
        year=2025,
        labels=["learnable", "token"],
        relevance=0.7,
        label_scores={},
    )
    plan = dry_run(engine, CATALOGUE)  # runs the render check: the entry must be found by its title
    assert [c.title for c in plan.changes] == [title]
    [row] = [e for e in parse(plan.new_text).entries if e.arxiv_id == "2502.00003"]
    assert row.title == title and row.venue == "CVPR" and row.raw.count(" | ") == 3


def test_a_title_without_latin_letters_is_added_and_upgraded(engine: Engine) -> None:
    # Such a title folds to no key: the added entry was "missing from the render" and an
    # upgraded one "lost", and every publish of the catalogue stopped.
    title = "视觉提示学习综述"
    import_list(engine)
    accept(
        engine,
        title=title,
        arxiv_id="2502.00004",
        venue="CVPR",
        year=2025,
        labels=["learnable", "token"],
        relevance=0.7,
        label_scores={},
    )
    plan = dry_run(engine, CATALOGUE)
    [row] = [e for e in parse(plan.new_text).entries if e.arxiv_id == "2502.00004"]
    assert row.title == title and row.section_path[-1] == "Token-Level"

    adaptive = "Adaptive Prompt: Unlocking the Power of Visual Prompt Tuning"
    listed = README_0624.read_text().replace(adaptive, title)
    [preprint] = [e.raw for e in parse(listed).entries if e.title == title]
    upgraded = listed.replace(preprint, preprint.replace("| arXiv | 2025 |", "| ICML | 2025 |"))
    assert upgraded != listed and check_render(listed, upgraded, []) == []


@pytest.mark.parametrize(
    ("venue", "year", "expected", "preprint"),
    [
        ("CVPR 2025", None, ("CVPR", 2025), False),
        ("NeurIPS", 2024, ("NeurIPS", 2024), False),
        ("arXiv", 2024, ("arXiv", 2024), True),
        (None, 2024, (None, 2024), True),
    ],
)
def test_venue_helpers(venue: str | None, year: int | None, expected: tuple, preprint: bool) -> None:
    assert split_venue(venue, year) == expected
    assert normalize.is_preprint_venue(expected[0]) is preprint


def test_entry_rows_carry_the_candidate_link(engine: Engine) -> None:
    import_list(engine)
    new_id, upgrade_id = accept_two(engine)
    with transaction(engine) as session:
        promote(session, CATALOGUE)
    with session_factory(engine)() as session:
        linked = {e.candidate_id: e.state for e in session.scalars(select(EntryRow)) if e.candidate_id}
    assert linked == {new_id: "added", upgrade_id: "updated"}


def test_a_bullet_style_list_gets_a_two_line_entry_with_short_name_and_badge(engine: Engine) -> None:
    """generalizable-vlm: per-year sections, `Short` **Title** Venue Year, links and a badge."""
    path = README_0624.parent / "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md"
    import_catalogue(engine, CATALOGUE, path.read_text(encoding="utf-8"), preset="generalizable-vlm")
    accept(
        engine,
        title="CoCoOp: Conditional Prompt Learning for Vision-Language Models",
        arxiv_id="2203.05557",
        venue="CVPR",
        year=2025,  # hand-picked so that the entry lands in an existing year section
        labels=["image-text"],
        relevance=0.95,
        label_scores={"image-text": 0.9},
        code_url="https://github.com/KaiyangZhou/CoOp",
    )
    with transaction(engine) as session:
        result = promote(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
    assert result.skipped == [] and len(result.added) == 1
    entry = next(e for e in parse(text).entries if e.arxiv_id == "2203.05557")
    assert entry.section_path[-1] == "Published in 2025"
    assert (entry.short_name, entry.venue, entry.year) == ("CoCoOp", "CVPR", 2025)
    assert entry.badges == ["Image-Text"] and entry.code_url == "https://github.com/KaiyangZhou/CoOp"
    assert entry.raw.count("\n") == 2 and entry.raw.startswith("- `CoCoOp` **CoCoOp: Conditional")


def test_an_added_preprint_follows_its_papers_new_venue_into_its_year_section(engine: Engine) -> None:
    """An entry promoted as a preprint ("arXiv 2025", PR open) kept that venue after the sources
    moved its paper to a venue: the pull request proposed a venue known to be stale, in the
    year section of the preprint, and only a second pull request after the merge fixed it."""
    path = README_0624.parent / "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md"
    old = path.read_text(encoding="utf-8")
    import_catalogue(engine, CATALOGUE, old, preset="generalizable-vlm")
    candidate = accept(
        engine,
        title="CoCoOp: Conditional Prompt Learning for Vision-Language Models",
        arxiv_id="2203.05557",
        venue="arXiv",
        year=2025,  # hand-picked: a preprint of an existing year section
        labels=["image-text"],
        relevance=0.95,
        label_scores={"image-text": 0.9},
    )
    with transaction(engine) as session:
        promote(session, CATALOGUE)
        session.get_one(CandidateRow, candidate).status = "published"  # its pull request is open
    with transaction(engine) as session:  # the sources see it at a venue (as ingest records it)
        paper = session.get_one(CandidateRow, candidate).paper
        paper.previous_venue, paper.venue, paper.year = "arXiv", "CVPR", 2026
        paper.venue_upgraded_at = datetime(2026, 11, 25, tzinfo=UTC)
    with transaction(engine) as session:
        result = promote(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
        changes = pending_changes(session, CATALOGUE)
    entries = [e for e in parse(text).entries if e.arxiv_id == "2203.05557"]
    assert [(e.venue, e.year, e.section_path[-1]) for e in entries] == [("CVPR", 2026, "Published in 2026")]
    assert result.skipped == [] and text.count("2203.05557") == 1
    assert [(c.action, c.venue, c.year, c.candidate_id) for c in changes] == [
        ("added", "CVPR", 2026, candidate)
    ]
    assert check_render(old, text, changes) == []
    with transaction(engine) as session:  # and it stays put
        again = promote(session, CATALOGUE)
        assert (again.added, again.retracted) == ([], [])
        assert render_catalogue(session, CATALOGUE) == text
        assert session.get_one(CandidateRow, candidate).status == "published"


def test_a_new_entry_takes_its_short_name_from_the_abstract_when_the_title_has_none(
    engine: Engine, prompt_papers: dict[str, dict[str, str]]
) -> None:
    path = README_0624.parent / "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md"
    import_catalogue(engine, CATALOGUE, path.read_text(encoding="utf-8"), preset="generalizable-vlm")
    title = "Read-only Prompt Optimization for Vision-Language Few-shot Learning"
    accept(
        engine,
        title=title,
        arxiv_id=None,
        venue="ICCV",
        year=2025,  # hand-picked, as above
        labels=["image-text"],
        relevance=0.95,
        label_scores={"image-text": 0.9},
        abstract=prompt_papers[normalize.title_key(title)]["abstract"],
    )
    with transaction(engine) as session:
        promote(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
    entry = next(e for e in parse(text).entries if e.title == title)
    assert entry.short_name == "RPO" and entry.raw.startswith("- `RPO` **Read-only Prompt Optimization")


def test_a_paper_a_table_lists_by_its_name_is_not_added_again(engine: Engine) -> None:
    """prompt-adaptation lists "E2VPT" (ICCV 2023, an arXiv link); CVF's record has neither."""
    before = PROMPT_ADAPTATION.read_text(encoding="utf-8")
    import_catalogue(engine, CATALOGUE, before, preset="prompt-adaptation")
    accept_iccv_vpt(engine, "E^2VPT: An Effective and Efficient Approach for Visual Prompt Tuning")
    with transaction(engine) as session:
        result = promote(session, CATALOGUE)
        assert render_catalogue(session, CATALOGUE) == before
    assert result.added == [] and [s.reason for s in result.skipped] == [
        "already listed (line 104, ICCV 2023)"
    ]


def test_hostile_links_from_sources_never_reach_the_list_or_the_pull_request(engine: Engine) -> None:
    import_list(engine)
    candidate = accept(
        engine,
        title="A Paper With Hostile Links",
        arxiv_id=None,
        venue="CVPR",
        year=2025,
        labels=["learnable", "pixel"],
        relevance=0.7,
        label_scores={},
        code_url="data:text/html,<script>alert(1)</script>",
    )
    with transaction(engine) as session:
        paper = session.get_one(CandidateRow, candidate).paper
        paper.pdf_url = "javascript:alert(document.cookie)"
        paper.doi = "10.1000/x) [evil](javascript:alert(1)"
    with transaction(engine) as session:
        promote(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
        body = pull_body(CATALOGUE, pending_changes(session, CATALOGUE))
    row = next(line for line in text.splitlines() if "A Paper With Hostile Links" in line)
    assert "javascript:" not in row and "data:" not in row
    assert "javascript:" not in body and "data:" not in body


STELLAR = README_0624.parent / "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md"
# (preset, list text, labels of a new paper, arXiv id of a listed preprint, its title):
# generalizable-vlm lists no preprint, so RMAdapter's "AAAI 2026." is edited to "arXiv 2026."
MULTI_WORD_CASES = {
    "generalizable-vlm": (
        STELLAR.read_text(encoding="utf-8").replace(
            "Multi-Modal Adapter for Vision-Language Models**    AAAI 2026.",
            "Multi-Modal Adapter for Vision-Language Models**    arXiv 2026.",
        ),
        ["image-text"],
        "2512.06811",
        "RMAdapter: Reconstruction-based Multi-Modal Adapter for Vision-Language Models",
    ),
    "prompt-adaptation": (
        PROMPT_ADAPTATION.read_text(encoding="utf-8"),
        ["vpt-learnable"],
        "2402.02242",
        "Parameter-Efficient Fine-Tuning for Pre-Trained Vision Models",
    ),
    "awesome-vpt": (
        README_0624.read_text(encoding="utf-8"),
        ["learnable", "token"],
        "2411.01327",
        "Adaptive Prompt: Unlocking the Power of Visual Prompt Tuning",
    ),
}


@pytest.mark.parametrize("venue", ["CVPR Workshops", "Pattern Recognition", "ICLR (Oral)", "Proc. IEEE"])
@pytest.mark.parametrize("preset", sorted(MULTI_WORD_CASES))
def test_a_venue_of_several_words_reads_back_as_promotion_wrote_it(
    engine: Engine, preset: str, venue: str
) -> None:
    """generalizable-vlm's "`Short` **Title**    CVPR Workshops 2025." read back as venue
    "Workshops" ("ICLR (Oral) 2025." as none): once our pull request was merged, the
    upgraded entry looked like a preprint still and stayed a pending upgrade at every
    publish, and an added one was written again. Table presets read the Venue cell whole."""
    text, labels, preprint_id, preprint_title = MULTI_WORD_CASES[preset]
    import_list(engine, text=text)
    with transaction(engine) as session:
        session.scalar(select(CatalogueRow)).preset = preset  # type: ignore[union-attr]
    new_id = accept(
        engine,
        title="CoCoOp: Conditional Prompt Learning for Vision-Language Models",
        arxiv_id="2203.05557",
        venue=venue,
        year=2025,  # hand-picked so that the entry lands in an existing year section
        labels=labels,
        relevance=0.95,
        label_scores=dict.fromkeys(labels, 0.9),
    )
    upgrade_id = accept(
        engine,
        title=preprint_title,
        arxiv_id=preprint_id,
        venue=venue,
        year=2026,
        labels=labels,
        relevance=0.9,
        label_scores=dict.fromkeys(labels, 0.9),
        previous_venue="arXiv",
    )
    with transaction(engine) as session:
        result = promote(session, CATALOGUE)
        written = render_catalogue(session, CATALOGUE)
    assert (len(result.added), len(result.updated), result.skipped) == (1, 1, [])
    shown = {e.arxiv_id: (e.venue, e.year) for e in parse(written).entries}
    assert (shown["2203.05557"], shown[preprint_id]) == ((venue, 2025), (venue, 2026))

    with transaction(engine) as session:  # the maintainer merges the pull request
        for candidate in (new_id, upgrade_id):
            session.get_one(CandidateRow, candidate).status = "published"
        rebase = rebase_catalogue(session, CATALOGUE, written, "merged")
    assert sorted(rebase.absorbed) == sorted(
        ["CoCoOp: Conditional Prompt Learning for Vision-Language Models", preprint_title]
    )
    assert (rebase.kept_added, rebase.kept_updated, rebase.dropped) == ([], [], [])
    with transaction(engine) as session:  # nothing left to do
        again = promote(session, CATALOGUE)
        assert render_catalogue(session, CATALOGUE) == written
        assert pending_changes(session, CATALOGUE) == []
        stored = {e.arxiv_id: e.venue for e in get_catalogue(session, CATALOGUE).entries}
    assert (again.added, again.updated, again.retracted, again.skipped) == ([], [], [], [])
    assert stored["2203.05557"] == stored[preprint_id] == venue


def test_a_doi_with_url_characters_links_to_itself_in_the_list(engine: Engine) -> None:
    """A paper known only by its DOI is linked through doi.org, its URL characters encoded as
    the digest encodes them: written as is, Wiley's `#`/`<`/`>` DOIs cut the link short."""
    before = PROMPT_ADAPTATION.read_text(encoding="utf-8")
    import_catalogue(engine, CATALOGUE, before, preset="prompt-adaptation")
    candidate = accept_iccv_vpt(engine, "Prompting Things Sideways for Journals")
    sici = "10.1002/(sici)1097-4571(199806)49:8<693::aid-asi4>3.0.co;2-o#x"
    with transaction(engine) as session:
        session.get_one(CandidateRow, candidate).paper.doi = sici
    with transaction(engine) as session:
        assert len(promote(session, CATALOGUE).added) == 1
        text = render_catalogue(session, CATALOGUE)
    entry = next(e for e in parse(text).entries if e.title.startswith("Prompting Things Sideways"))
    assert entry.paper_url == normalize.doi_url(sici)
    assert "%3C693%3A%3Aaid-asi4%3E3.0.co%3B2-o%23x" in (entry.paper_url or "")
    item = ReviewQueue(engine, "alice", CATALOGUE).get(candidate)
    assert dict(item.links)["DOI"] == normalize.doi_url(sici)
