"""Taking in a README that changed upstream: our changes replayed, upstream's edits kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from vpt_tracker.catalogue.markdown import parse
from vpt_tracker.catalogue.promote import pending_changes, promote
from vpt_tracker.catalogue.service import get_catalogue, import_catalogue, render_catalogue
from vpt_tracker.cli import main
from vpt_tracker.publish.publisher import RenderCheckFailed, check_render
from vpt_tracker.publish.upstream import rebase_catalogue
from vpt_tracker.store import session_factory, transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, DecisionRow, EntryRow

from .conftest import (
    CATALOGUE,
    PROMPT_ADAPTATION,
    README_0624,
    accept_iccv_vpt,
    accept_synbol_twice_listed_paper,
    accept_two,
    import_list,
)

ADAPTIVE_ARXIV = (
    "| [Adaptive Prompt: Unlocking the Power of Visual Prompt Tuning]"
    "(https://arxiv.org/abs/2411.01327) | arXiv |"
)


def promoted(engine: Engine) -> tuple[int, int]:
    import_list(engine)
    ids = accept_two(engine)
    with transaction(engine) as session:
        promote(session, CATALOGUE)
    return ids


def test_a_maintainer_edit_is_kept_and_our_changes_replayed(engine: Engine) -> None:
    new_id, upgrade_id = promoted(engine)
    upstream = README_0624.read_text().replace("| 2019 | First work |", "| 2019 | First work, seminal |")
    with transaction(engine) as session:
        result = rebase_catalogue(session, CATALOGUE, upstream, "abc123")
        text = render_catalogue(session, CATALOGUE)
    assert (len(result.kept_added), len(result.kept_updated), result.dropped) == (1, 1, [])
    assert "First work, seminal |" in text and "2210.01253" in text and ADAPTIVE_ARXIV not in text
    with session_factory(engine)() as session:
        catalogue = session.scalars(select(CatalogueRow)).one()
        assert (catalogue.source_text, catalogue.upstream_commit) == (upstream, "abc123")
        links = {e.candidate_id: e.state for e in session.scalars(select(EntryRow)) if e.candidate_id}
    assert links == {new_id: "added", upgrade_id: "updated"}


def test_upstream_venue_and_upstream_additions_win(engine: Engine) -> None:
    promoted(engine)
    upstream = README_0624.read_text().replace(
        ADAPTIVE_ARXIV, ADAPTIVE_ARXIV.replace("| arXiv |", "| NeurIPS |")
    )
    plot_row = (
        "| [PLOT: Prompt Learning with Optimal Transport for Vision-Language Models]"
        "(https://arxiv.org/abs/2210.01253) | ICLR | 2023 | hand-added by the maintainer |\n"
    )
    anchor = "| [LPT: Long-tailed Prompt Tuning for Image Classification]"
    upstream = upstream.replace(anchor, plot_row + anchor, 1)
    with transaction(engine) as session:
        result = rebase_catalogue(session, CATALOGUE, upstream, None)
        text = render_catalogue(session, CATALOGUE)
    assert len(result.absorbed) == 2 and result.kept_added == [] and result.kept_updated == []
    assert text == upstream  # nothing of ours is left to replay: upstream's text, byte for byte
    doc = parse(text)
    assert [e.cells.get("Keywords") for e in doc.entries if e.arxiv_id == "2210.01253"] == [
        "hand-added by the maintainer"
    ]
    with session_factory(engine)() as session:
        plot = session.scalars(select(EntryRow).where(EntryRow.arxiv_id == "2210.01253")).one()
        assert plot.state == "imported" and plot.candidate_id is not None


def test_both_lines_of_a_twice_listed_paper_keep_their_upgrade_after_an_upstream_edit(
    engine: Engine,
) -> None:
    # synbol lists one paper twice ("Arxiv 2023" on both lines); an accepted TMLR 2024 upgrades
    # both. Both rows were matched to the first line when upstream was taken in, so any edit
    # of the maintainer's (here one blank line) left the second line "Arxiv 2023" again.
    old, candidate = accept_synbol_twice_listed_paper(engine)
    with transaction(engine) as session:
        promote(session, CATALOGUE)
    upstream = old.replace("\n", "\n\n", 1)
    with transaction(engine) as session:
        result = rebase_catalogue(session, CATALOGUE, upstream, "abc123")
        promote(session, CATALOGUE)
        text = render_catalogue(session, CATALOGUE)
        changes = pending_changes(session, CATALOGUE)
    line = "- **[2] Towards a Unified View on Visual Parameter-Efficient Transfer Learning,** {}.\n"
    assert text == upstream.replace(line.format("Arxiv 2023"), line.format("TMLR 2024"))
    assert len(result.kept_updated) == 2 and [c.candidate_id for c in changes] == [candidate, candidate]

    # a maintainer who deletes the duplicate line leaves one line, upgraded
    once = upstream.replace(line.format("Arxiv 2023"), "", 1)
    with transaction(engine) as session:
        result = rebase_catalogue(session, CATALOGUE, once, "def456")
        text = render_catalogue(session, CATALOGUE)
    assert len(result.kept_updated) == 1 and len(result.dropped) == 1
    assert line.format("TMLR 2024") in text and line.format("Arxiv 2023") not in text


def test_entries_upstream_removed_or_sections_it_dropped_are_reported(engine: Engine) -> None:
    new_id, _ = promoted(engine)
    upstream = README_0624.read_text()
    line = next(x for x in upstream.splitlines(keepends=True) if x.startswith(ADAPTIVE_ARXIV))
    upstream = upstream.replace(line, "").replace("#### Token-Level", "#### Token Prompts")
    with transaction(engine) as session:
        result = rebase_catalogue(session, CATALOGUE, upstream, None)
        text = render_catalogue(session, CATALOGUE)
    assert text == upstream
    assert any("upstream removed the entry" in d for d in result.dropped)
    assert any("no section of the new README takes it" in d for d in result.dropped)
    with session_factory(engine)() as session:
        assert session.get_one(CandidateRow, new_id).status == "accepted"  # promotion may try again


LOGOPROMPT_CVF = (
    "https://openaccess.thecvf.com/content/ICCV2023/html/Shi_LoGoPrompt_Synthetic_Text_Images_"
    "Can_Be_Good_Visual_Prompts_for_ICCV_2023_paper.html"
)


@pytest.mark.parametrize("link", [LOGOPROMPT_CVF, None], ids=["by-link", "by-name"])
def test_a_paper_shown_by_its_name_is_checked_and_found_upstream(engine: Engine, link: str | None) -> None:
    """prompt-adaptation's VPT table names papers ("VPT", "E2VPT"): our row keeps the whole
    title, the README shows "LoGoPrompt". The render check and the rebase after the merge must
    both know it as the same entry, or a merged paper would be added a second time: by its
    link, or by its name where it has none."""
    old = PROMPT_ADAPTATION.read_text(encoding="utf-8")
    import_catalogue(engine, CATALOGUE, old, preset="prompt-adaptation")
    title = "LoGoPrompt: Synthetic Text Images Can Be Good Visual Prompts for Vision-Language Models"
    accept_iccv_vpt(engine, title, link)
    with transaction(engine) as session:
        promote(session, CATALOGUE)
        merged = render_catalogue(session, CATALOGUE)
        changes = pending_changes(session, CATALOGUE)
    shown = f"[LoGoPrompt]({link})" if link else "LoGoPrompt"
    assert f"| {shown} | ICCV | 2023 | Learnable |" in merged
    assert check_render(old, merged, changes) == []
    with pytest.raises(RenderCheckFailed, match="added entries missing"):
        check_render(old, old, changes)

    with transaction(engine) as session:
        result = rebase_catalogue(session, CATALOGUE, merged, "merged")
        assert render_catalogue(session, CATALOGUE) == merged  # not added a second time
    assert (result.absorbed, result.kept_added) == ([title], [])


def test_catalogue_import_replace_keeps_reviews_and_our_changes(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `catalogue import --replace` (what the README says to run after the list changed
    # upstream) deleted the catalogue row, and with it, by cascade, every candidate, review
    # decision (the audit log and the classifier's training data) and pull-request record,
    # and the entries vpt-tracker had added: the next render lacked them.
    new_id, upgrade_id = promoted(engine)
    with session_factory(engine)() as session:
        catalogue_id = session.scalars(select(CatalogueRow.id)).one()
        decisions = session.scalars(select(DecisionRow.id).order_by(DecisionRow.id)).all()
    upstream = README_0624.read_text().replace("| 2019 | First work |", "| 2019 | First work, seminal |")
    edited = tmp_path / "README.md"
    edited.write_text(upstream, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # no config file of the developer's
    args = ["catalogue", "import", str(edited), "--name", CATALOGUE, "--preset", "awesome-vpt", "--replace"]
    result = CliRunner().invoke(main, ["--database", db_url, *args])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"replaced {CATALOGUE!r}: 56 entries, 24 sections (10 with entries); "
        "kept 1 added and 1 updated entries, 0 already upstream\n"
    )

    with session_factory(engine)() as session:
        assert session.scalars(select(CatalogueRow.id)).one() == catalogue_id
        statuses = {c.id: c.status for c in session.scalars(select(CandidateRow))}
        assert statuses == {new_id: "accepted", upgrade_id: "accepted"}
        assert session.scalars(select(DecisionRow.id).order_by(DecisionRow.id)).all() == decisions
        assert get_catalogue(session, CATALOGUE).github_repo == "yunbeizhang/Awesome-Visual-Prompt-Tuning"
        text = render_catalogue(session, CATALOGUE)
    assert "First work, seminal |" in text and ADAPTIVE_ARXIV not in text
    assert text.count("2210.01253") == 1 and len(parse(text).entries) == 57
    with transaction(engine) as session:
        again = promote(session, CATALOGUE)
        assert (again.added, again.updated) == ([], []) and render_catalogue(session, CATALOGUE) == text
