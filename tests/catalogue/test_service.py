# ruff: noqa: E501  (expected values are verbatim README lines)
"""Import, render, add, upgrade and stats through the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from vpt_tracker.catalogue import removal
from vpt_tracker.catalogue.markdown import NewEntry
from vpt_tracker.catalogue.removal import plan_removal, remove_catalogue
from vpt_tracker.catalogue.service import (
    add_entry,
    catalogue_stats,
    get_catalogue,
    import_catalogue,
    render_catalogue,
    upgrade_entry,
)
from vpt_tracker.errors import UserError
from vpt_tracker.store import session_factory, transaction
from vpt_tracker.store.tables import (
    CandidateRow,
    CatalogueRow,
    DecisionRow,
    EntryRow,
    PaperRow,
    PublicationRow,
    PullRequestRow,
    SightingRow,
    VenueUpgradeRow,
)

LISTS = Path(__file__).parents[1] / "fixtures" / "lists"
ALL = sorted(p.name for p in LISTS.glob("*README*.md"))
STELLAR = "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md"
VPT = "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"


def read(name: str) -> str:
    return (LISTS / name).read_text(encoding="utf-8")


def test_every_list_round_trips_through_the_store(engine: Engine) -> None:
    for i, name in enumerate(ALL):
        import_catalogue(engine, f"list{i}", read(name), preset=None)
    with session_factory(engine)() as session:
        for i, name in enumerate(ALL):
            assert render_catalogue(session, f"list{i}") == read(name), name


def test_import_stores_fields_and_preset_labels(engine: Engine) -> None:
    result = import_catalogue(engine, "vpt", read(VPT), preset="awesome-vpt", github_repo="yunbeizhang/x")
    assert result.entries == 56
    with session_factory(engine)() as session:
        row = session.scalar(select(EntryRow).where(EntryRow.line == 103))
        assert row is not None
        assert row.title == "BlackVIP: Black-Box Visual Prompting for Robust Transfer Learning"
        assert row.title_key == "blackvip black box visual prompting for robust transfer learning"
        assert (row.venue, row.year, row.arxiv_id) == ("CVPR", 2023, "2303.14773")
        assert row.labels == ["generative", "pixel", "black-box"]
        assert row.section_path == ["Core Methodologies", "2. Generative Visual Prompts", "Pixel-Level"]
        assert row.raw is not None and row.raw.startswith("|[BlackVIP")
        assert get_catalogue(session, "vpt").github_repo == "yunbeizhang/x"


def test_without_preset_the_section_path_is_the_labelling(engine: Engine) -> None:
    import_catalogue(engine, "g", read(STELLAR), preset=None)
    with session_factory(engine)() as session:
        labels = {tuple(r.labels) for r in session.scalars(select(EntryRow))}
    assert labels == {("Published in 2026",), ("Published in 2025",)}


def test_second_import_refuses_unless_replace(engine: Engine) -> None:
    import_catalogue(engine, "g", read(STELLAR), preset="generalizable-vlm")
    with pytest.raises(UserError, match="already exists; pass --replace"):
        import_catalogue(engine, "g", read(VPT), preset=None)
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(EntryRow)) == 34
    with transaction(engine) as session:  # a paper under review for this catalogue
        paper = PaperRow(title="A paper", title_key="a paper")
        session.add(paper)
        session.flush()
        session.add(CandidateRow(paper_id=paper.id, catalogue_id=get_catalogue(session, "g").id))
    result = import_catalogue(engine, "g", read(VPT), preset=None, replace=True)
    assert result.replaced
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(EntryRow)) == 56
        assert session.scalar(select(func.count()).select_from(CatalogueRow)) == 1
        # the catalogue's candidates (and their review decisions) are not deleted with it
        assert session.scalars(select(CandidateRow.catalogue_id)).all() == [result.catalogue_id]
        assert render_catalogue(session, "g") == read(VPT)


BAD_NAMES = ["", " ", "a b", "a/b", "../x", "..", "-x", "x.", "x.lock", "a" * 65]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_that_cannot_be_a_folder_and_a_branch_is_refused(engine: Engine, name: str) -> None:
    # Before, "../x" was stored (a model trained for it was written outside `classifiers/`)
    # and a name of 200 characters overflowed PostgreSQL's column with a traceback.
    with pytest.raises(UserError, match="catalogue"):
        import_catalogue(engine, name, read(VPT), preset="awesome-vpt")
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(CatalogueRow)) == 0


@pytest.mark.parametrize("name", ["awesome-vpt", "VPT_2025.v2", "a" * 64])
def test_every_allowed_name_is_a_valid_git_branch_and_folder(
    engine: Engine, name: str, tmp_path: Path
) -> None:
    import_catalogue(engine, name, read(VPT), preset="awesome-vpt")
    check = subprocess.run(
        ["git", "check-ref-format", "--branch", f"vpt-tracker/{name}"], capture_output=True
    )
    assert check.returncode == 0
    (tmp_path / "models" / name).mkdir(parents=True)
    assert [p.name for p in (tmp_path / "models").iterdir()] == [name]


@pytest.mark.parametrize("repo", ["not a repo", "owner", "o/" + "r" * 300, "-o/r", "o/..", "o/r/extra"])
def test_a_github_repo_that_is_not_owner_slash_name_is_refused(engine: Engine, repo: str) -> None:
    # Before, "not a repo" was stored (publish failed much later) and 300 characters
    # overflowed PostgreSQL's column with a traceback.
    with pytest.raises(UserError, match="owner/name"):
        import_catalogue(engine, "vpt", read(VPT), preset="awesome-vpt", github_repo=repo)
    import_catalogue(
        engine, "vpt", read(VPT), preset="awesome-vpt", github_repo="yunbeizhang/Awesome-Visual-Prompt-Tuning"
    )


def test_git_itself_refuses_the_branches_of_names_refused(tmp_path: Path) -> None:
    for name in ["a b", "..", "x.", "x.lock", "a..b"]:
        check = subprocess.run(
            ["git", "check-ref-format", "--branch", f"vpt-tracker/{name}"], capture_output=True
        )
        assert check.returncode != 0, name


def test_a_venue_cell_longer_than_its_column_imports_and_renders_whole(engine: Engine) -> None:
    # Synthetic: a real row of the awesome-vpt list with a note pasted into its Venue cell.
    (row,) = [line for line in read(VPT).splitlines() if line.startswith("| [Visual Prompt Tuning](")]
    cells = row.split("|")
    cells[2] = " " + "Oral; see also the extended version in the journal special issue " * 4
    text = read(VPT).replace(row, "|".join(cells))
    import_catalogue(engine, "noted", text, preset="awesome-vpt")
    with session_factory(engine)() as session:
        assert render_catalogue(session, "noted") == text
        venue = session.scalar(select(EntryRow.venue).where(EntryRow.title == "Visual Prompt Tuning"))
    assert venue is not None and len(venue) == 128 and venue.startswith("Oral; see also")


def test_unknown_preset_writes_nothing(engine: Engine) -> None:
    with pytest.raises(UserError, match="unknown preset 'nope'; known presets: awesome-vpt"):
        import_catalogue(engine, "g", read(STELLAR), preset="nope")
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(CatalogueRow)) == 0


def test_add_and_upgrade_render_as_exact_diffs(engine: Engine) -> None:
    old = read(STELLAR)
    import_catalogue(engine, "g", old, preset="generalizable-vlm")
    with transaction(engine) as session:
        new = NewEntry(
            "FooPL: Prompting Foo", "CVPR", 2025, "https://arxiv.org/abs/2501.00001", None, "FooPL", ["Text"]
        )
        added = add_entry(session, "g", new, section_path=["Published in 2025"], labels=["text"])
        assert added.state == "added" and added.raw is None
        promise = session.scalar(select(EntryRow).where(EntryRow.short_name == "Promise"))
        assert promise is not None
        upgrade_entry(session, promise.id, venue="TPAMI", year=2027)
    with session_factory(engine)() as session:
        rendered = render_catalogue(session, "g")
        stats = catalogue_stats(session, "g")
    diff = [d for d in difflib.unified_diff(old.splitlines(True), rendered.splitlines(True), n=0)]
    minus = [d for d in diff if d.startswith("-") and not d.startswith("---")]
    plus = [d for d in diff if d.startswith("+") and not d.startswith("+++")]
    assert minus == [
        "-- `Promise` **PROMISE: Prompt-Robust Vision-Language Models Via Meta-Finetuning**    ICLR 2026.     \n"
    ]
    assert (
        plus[0]
        == "+- `Promise` **PROMISE: Prompt-Robust Vision-Language Models Via Meta-Finetuning**    TPAMI 2027.     \n"
    )
    assert plus[1] == "+- `FooPL` **FooPL: Prompting Foo**    CVPR 2025.   \n"
    assert len(plus) == 3
    assert (stats["entries"], stats["added"], stats["updated"]) == (35, 1, 1)


def test_add_to_unknown_section_and_unknown_catalogue(engine: Engine) -> None:
    import_catalogue(engine, "g", read(STELLAR), preset=None)
    with transaction(engine) as session, pytest.raises(UserError, match="no section"):
        add_entry(session, "g", NewEntry("X"), section_path=["Nowhere"], labels=[])
    with session_factory(engine)() as session, pytest.raises(UserError, match="known catalogues: g"):
        get_catalogue(session, "missing")


def test_stats(engine: Engine) -> None:
    import_catalogue(engine, "g", read(STELLAR), preset="generalizable-vlm")
    with session_factory(engine)() as session:
        stats = catalogue_stats(session, "g")
    assert stats["sections"] == {"Published in 2026": 8, "Published in 2025": 26}
    assert stats["labels"] == {"image-text": 25, "text": 9}
    assert stats["venues"]["CVPR"] == 9
    assert stats["years"] == {"2025": 26, "2026": 8}
    assert stats["without_paper_link"] == 4
    assert stats["without_any_link"] == 3  # "[No paper available] [No code available]" x3


# ---- catalogue remove ------------------------------------------------------------------------
def _paper_with_candidates(engine: Engine, statuses: dict[str, str]) -> int:
    """A paper with a sighting, a candidate of each catalogue named in `statuses`, and a venue
    upgrade that lists every one of them (as ingestion records it)."""
    with transaction(engine) as session:
        paper = PaperRow(title="Visual Prompt Tuning", title_key="visual prompt tuning")
        session.add(paper)
        session.flush()
        session.add(
            SightingRow(paper_id=paper.id, source="arxiv_api", source_id="2203.12119", payload_hash="h")
        )
        ids = []
        for name, status in statuses.items():
            catalogue = session.scalar(select(CatalogueRow).where(CatalogueRow.name == name))
            assert catalogue is not None
            ids.append(catalogue.id)
            session.add(CandidateRow(paper_id=paper.id, catalogue_id=catalogue.id, status=status))
        session.add(VenueUpgradeRow(paper_id=paper.id, previous_venue="arXiv", venue="CVPR", listed_in=ids))
        return paper.id


def _count(engine: Engine, table: type) -> int:
    with session_factory(engine)() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_remove_takes_the_catalogue_and_what_is_its_alone(engine: Engine) -> None:
    """A catalogue imported under a mistyped name stayed among the known ones for good:
    `remove_catalogue` deletes it, its entries and candidates; papers, sightings and the other
    catalogue stay."""
    import_catalogue(engine, "keep", read(STELLAR), preset="generalizable-vlm")
    import_catalogue(engine, "typo", read(VPT), preset="awesome-vpt")
    paper_id = _paper_with_candidates(engine, {"keep": "pending", "typo": "pending"})
    with session_factory(engine)() as session:
        plan = plan_removal(session, "typo")
    assert (plan.entries, plan.candidates, plan.history()) == (56, {"pending": 1}, [])
    removed = remove_catalogue(engine, "typo", expected=plan)
    assert removed == plan
    with session_factory(engine)() as session:
        assert session.scalars(select(CatalogueRow.name)).all() == ["keep"]
        assert session.scalar(select(func.count()).select_from(EntryRow)) == 34
        assert session.scalars(select(CandidateRow.paper_id)).all() == [paper_id]
        assert session.get(PaperRow, paper_id) is not None
    assert _count(engine, SightingRow) == 1
    with pytest.raises(UserError, match=r"unknown catalogue 'typo'; known catalogues: keep"):
        remove_catalogue(engine, "typo")


def test_remove_refuses_a_catalogue_with_history_unless_forced(engine: Engine) -> None:
    """An open pull request, accepted candidates and their review decisions are a
    maintainer's work: removing them takes --force; refused, nothing changes."""
    import_catalogue(engine, "vpt", read(VPT), preset="awesome-vpt")
    _paper_with_candidates(engine, {"vpt": "accepted"})
    with transaction(engine) as session:
        candidate = session.scalars(select(CandidateRow)).one()
        session.add(DecisionRow(candidate_id=candidate.id, reviewer="ann", action="accept"))
        session.add(PullRequestRow(catalogue_id=candidate.catalogue_id, branch="vpt-tracker/vpt", number=7))
        session.add(
            PublicationRow(catalogue_id=candidate.catalogue_id, candidate_id=candidate.id, pull_request=7)
        )
    with pytest.raises(UserError) as refused:
        remove_catalogue(engine, "vpt")
    message = str(refused.value)
    assert "1 open pull request (#7 open)" in message and "candidates accepted 1" in message
    assert "1 review decision" in message and "1 publication" in message and "--force" in message
    assert (_count(engine, CatalogueRow), _count(engine, DecisionRow), _count(engine, PullRequestRow)) == (
        1,
        1,
        1,
    )
    remove_catalogue(engine, "vpt", force=True)
    for table in (CatalogueRow, EntryRow, CandidateRow, DecisionRow, PullRequestRow, PublicationRow):
        assert _count(engine, table) == 0, table
    assert (_count(engine, PaperRow), _count(engine, SightingRow), _count(engine, VenueUpgradeRow)) == (
        1,
        1,
        1,
    )


def test_a_removed_catalogues_id_leaves_the_venue_upgrades(engine: Engine) -> None:
    """`venue_upgrades.listed_in` keeps catalogue ids: the removed one's goes with it, so that
    no catalogue is told, in the digest of a past week, of an upgrade in the removed one's list
    (an id removed before migration 0013 may still be given once more on SQLite)."""
    import_catalogue(engine, "keep", read(STELLAR), preset=None)
    import_catalogue(engine, "gone", read(VPT), preset=None)
    _paper_with_candidates(engine, {"keep": "pending", "gone": "pending"})
    remove_catalogue(engine, "gone")
    with session_factory(engine)() as session:
        keep = session.scalar(select(CatalogueRow.id).where(CatalogueRow.name == "keep"))
        assert session.scalars(select(VenueUpgradeRow.listed_in)).one() == [keep]


def test_a_removed_catalogues_id_is_never_given_again(engine: Engine) -> None:
    """The removed catalogue had the highest id, and SQLite gave it to the next catalogue
    imported (`catalogues` was not AUTOINCREMENT before migration 0013): a reviewer's open
    screen, a log line or a digest that named the removed catalogue by id then named the new
    one. PostgreSQL's sequence never gave it again."""
    import_catalogue(engine, "keep", read(STELLAR), preset=None)
    removed = import_catalogue(engine, "gone", read(VPT), preset=None).catalogue_id
    remove_catalogue(engine, "gone")
    new = import_catalogue(engine, "new", read(VPT), preset=None).catalogue_id
    assert new > removed


def test_remove_refuses_what_changed_since_the_question(engine: Engine) -> None:
    """A review between the question and the removal is not lost behind a "yes" to less."""
    import_catalogue(engine, "vpt", read(VPT), preset=None)
    with session_factory(engine)() as session:
        plan = plan_removal(session, "vpt")
    _paper_with_candidates(engine, {"vpt": "pending"})
    with pytest.raises(UserError, match="changed while you were asked"):
        remove_catalogue(engine, "vpt", expected=plan)
    assert _count(engine, CatalogueRow) == 1


def test_a_failed_removal_removes_nothing(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """One transaction: a failure part-way (entries and decisions deleted already) leaves the
    catalogue whole."""
    import_catalogue(engine, "vpt", read(VPT), preset=None)
    _paper_with_candidates(engine, {"vpt": "rejected"})
    with transaction(engine) as session:
        candidate = session.scalars(select(CandidateRow)).one()
        session.add(DecisionRow(candidate_id=candidate.id, reviewer="ann", action="reject"))

    def crash(*args: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(removal, "update", crash)
    with pytest.raises(RuntimeError):
        remove_catalogue(engine, "vpt", force=True)
    counts = [_count(engine, t) for t in (CatalogueRow, EntryRow, CandidateRow, DecisionRow)]
    assert counts == [1, 56, 1, 1]
