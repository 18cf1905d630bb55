"""E^2VPT, as CVF's ICCV 2023 index names it, and the same title as lists and journals write it."""

from __future__ import annotations

from pathlib import Path

from vpt_tracker.dumps import read_conference_index
from vpt_tracker.models import RawRecord

ICCV2023 = Path(__file__).resolve().parents[1] / "fixtures" / "ingest" / "conferences" / "ICCV2023.json"
TITLE = "E^2VPT: An Effective and Efficient Approach for Visual Prompt Tuning"


def at_iccv() -> RawRecord:
    """The real ICCV 2023 index entry (no arXiv id)."""
    (record,) = [r for r in read_conference_index(ICCV2023) if r.title == TITLE]
    return record


def journal_version(record: RawRecord) -> RawRecord:
    """The same title without its superscript marker ("E2VPT: …"), by the same authors at
    another venue: only an identical title merges across venues, so only the folding can."""
    return RawRecord(
        source="y",
        source_id="1",
        title=record.title.replace("^", ""),
        authors=record.authors,
        venue="TPAMI",
        year=2025,
    )
