"""A store to train a catalogue from, for the tests that train through the store."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select

from vpt_tracker.catalogue.service import import_catalogue
from vpt_tracker.classify.data import Example
from vpt_tracker.normalize import arxiv_id, title_key
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, PaperRow

VPT_README = (
    Path(__file__).parents[1]
    / "fixtures"
    / "lists"
    / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"
)


def paper_row(example: Example) -> PaperRow:
    return PaperRow(
        title=example.title,
        title_key=title_key(example.title)[:512],
        abstract=example.abstract,
        comment=example.comment,
        arxiv_id=arxiv_id(example.id) if example.id else None,
    )


def store_catalogue(engine: Engine, relevant: list[Example], unlabeled: list[Example]) -> dict[str, int]:
    """Catalogue "vpt": the real awesome-vpt list imported, every paper of `relevant` and
    `unlabeled` stored, the relevant ones that are not entries accepted as candidates, one
    paper rejected. Returns the papers' row ids by title (the rejected one also as
    "__rejected__")."""
    import_catalogue(engine, "vpt", VPT_README.read_text(encoding="utf-8"), preset="awesome-vpt")
    ids: dict[str, int] = {}
    with transaction(engine) as session:
        rows = [paper_row(e) for e in relevant + unlabeled]
        rows.append(
            PaperRow(title="Visual Prompt Tuning for frozen vision transformers", title_key="vpt title only")
        )
        session.add_all(rows)
        session.flush()
        ids = {row.title: row.id for row in rows}
        catalogue = session.scalar(select(CatalogueRow).where(CatalogueRow.name == "vpt"))
        assert catalogue is not None
        entry_keys = {entry.title_key for entry in catalogue.entries}
        entry_ids = {entry.arxiv_id for entry in catalogue.entries if entry.arxiv_id}
        for example in relevant:
            row_id = ids[example.title]
            if title_key(example.title) in entry_keys or (example.id and arxiv_id(example.id) in entry_ids):
                continue
            session.add(
                CandidateRow(
                    paper_id=row_id,
                    catalogue_id=catalogue.id,
                    status="accepted",
                    final_labels=list(example.labels),
                )
            )
        rejected = next(e for e in unlabeled if "prompt" in e.text().lower())
        session.add(
            CandidateRow(
                paper_id=ids[rejected.title], catalogue_id=catalogue.id, status="rejected", reason="off-topic"
            )
        )
        ids["__rejected__"] = ids[rejected.title]
    return ids
