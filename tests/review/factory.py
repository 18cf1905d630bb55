"""Build papers, catalogues and candidates straight into the store for review tests.

The review area is tested on its own, so it does not wait for ingestion or the classifier
to land: rows go in through `store.tables` directly, with realistic values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from vpt_tracker.normalize import title_key
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, EntryRow, PaperRow

LISTS = Path(__file__).resolve().parents[1] / "fixtures" / "lists"
#: The README the `prompt-adaptation` preset was written for (yunbeizhang, current) and the
#: one `awesome-vpt` was written for, as rewritten on 2025-10-20: its sections are gone.
PROMPT_ADAPTATION_README = LISTS / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README.md"
REWRITTEN_README = LISTS / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-10-20.md"


def catalogue(
    engine: Engine,
    name: str = "vpt",
    *,
    preset: str | None = None,
    entry_labels: Sequence[Sequence[str]] = (),
    readme: Path | None = None,
) -> int:
    """A catalogue; `entry_labels` adds one imported entry per label list (the taxonomy without preset).

    `readme` is the list's text (where a new entry would go); without it the list is empty.
    """
    text = readme.read_text(encoding="utf-8") if readme else "# list\n"
    with transaction(engine) as session:
        row = CatalogueRow(name=name, preset=preset, source_text=text, source_sha256="0" * 64)
        session.add(row)
        session.flush()
        for position, labels in enumerate(entry_labels):
            session.add(
                EntryRow(
                    catalogue_id=row.id,
                    position=position,
                    title=f"Entry {position}",
                    title_key=f"entry {position}",
                    labels=list(labels),
                )
            )
        return row.id


def candidate(
    engine: Engine,
    catalogue_id: int,
    title: str,
    *,
    relevance: float = 0.5,
    proposed: Sequence[str] = (),
    abstract: str = "",
    status: str = "pending",
    base_to_novel: float | None = None,
    base_to_novel_flag: bool | None = None,
    **paper: Any,
) -> int:
    """A paper and its candidate for the catalogue; returns the candidate id."""
    with transaction(engine) as session:
        row = PaperRow(title=title, title_key=title_key(title), abstract=abstract, **paper)
        session.add(row)
        session.flush()
        cand = CandidateRow(
            paper_id=row.id,
            catalogue_id=catalogue_id,
            status=status,
            relevance=relevance,
            proposed_labels=list(proposed),
            label_scores={label: 0.9 for label in proposed},
            base_to_novel=base_to_novel,
            base_to_novel_flag=base_to_novel_flag,
        )
        session.add(cand)
        session.flush()
        return cand.id


def many_candidates(engine: Engine, catalogue_id: int, count: int, *, start: int = 0) -> None:
    """`count` pending candidates with spread scores, inserted in bulk (for paging and benchmarks)."""
    words = ["visual", "prompt", "tuning", "adapter", "token", "pixel", "robust", "domain", "clip", "segment"]
    papers = []
    for i in range(start, start + count):
        title = f"{words[i % 10].title()} {words[(i // 10) % 10]} {words[(i // 100) % 10]} study {i}"
        papers.append(
            {
                "title": title,
                "title_key": title_key(title),
                "abstract": f"We study {words[i % 7]} prompts for {words[i % 3]} models, number {i}.",
                "authors": [f"Author {i}", "Second Author"],
                "year": 2020 + i % 6,
                "venue": "arXiv",
                "arxiv_id": f"24{i // 100000:02d}.{i % 100000:05d}",
                "first_author_key": f"author{i}",
            }
        )
    with engine.begin() as connection:
        for chunk in range(0, count, 5000):
            ids = connection.scalars(
                insert(PaperRow).returning(PaperRow.id, sort_by_parameter_order=True),
                papers[chunk : chunk + 5000],
            ).all()
            connection.execute(
                insert(CandidateRow),
                [
                    {
                        "paper_id": paper_id,
                        "catalogue_id": catalogue_id,
                        "status": "pending",
                        "relevance": (((start + chunk + n) * 7919) % 10007) / 10007,
                        "proposed_labels": ["learnable"] if (start + chunk + n) % 2 else ["pixel"],
                        "label_scores": {},
                        "base_to_novel": ((start + chunk + n) % 10) / 10,
                        "base_to_novel_flag": (start + chunk + n) % 10 >= 5,
                        "version": 1,
                    }
                    for n, paper_id in enumerate(ids)
                ],
            )
