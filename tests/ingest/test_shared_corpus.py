"""The whole abstract corpus (46 files of ../shared): one paper per distinct arXiv id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from vpt_tracker.dumps import read_corpus_jsonl
from vpt_tracker.ingest import ingest_records
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import PaperRow, SightingRow


@pytest.mark.shared
@pytest.mark.slow
def test_every_corpus_file_gives_one_paper_per_arxiv_id(shared_dir: Path, engine: Engine) -> None:
    files = sorted((shared_dir / "data/fixtures/corpus").rglob("*.jsonl"))
    assert len(files) == 46
    ids = {json.loads(line)["id"] for path in files for line in path.read_text().splitlines() if line.strip()}
    records = [record for path in files for record in read_corpus_jsonl(path)]

    first = ingest_records(engine, records, batch_size=2000)
    with transaction(engine) as session:
        stored = set(session.scalars(select(PaperRow.arxiv_id)))
        sightings = session.scalar(select(func.count()).select_from(SightingRow))
    assert first.new_papers == len(ids) == len(stored) and stored == ids
    assert first.new_sightings == sightings

    again = ingest_records(engine, records, batch_size=2000)
    assert (again.new_papers, again.new_sightings) == (0, 0)
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(PaperRow)) == len(ids)
