"""Rows for the digest tests, written through the real tables (a week of activity)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select

from vpt_tracker.store import transaction
from vpt_tracker.store.tables import (
    CandidateRow,
    CatalogueRow,
    EntryRow,
    PaperRow,
    RefetchWindowRow,
    RunRow,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday: "last week" is 2026-W47
IN_WEEK = datetime(2026, 11, 18, 7, 0, tzinfo=UTC)
BEFORE = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
HOSTILE = 'Prompts <script>alert("x")</script> & <b>bold</b> claims'


def paper(session: object, title: str, **fields: object) -> PaperRow:
    row = PaperRow(title=title, title_key=title.lower(), **fields)
    session.add(row)  # type: ignore[attr-defined]
    return row


def seed_week(engine: Engine) -> dict[str, int]:
    with transaction(engine) as session:
        cat = CatalogueRow(name="awesome-vpt", preset="awesome-vpt", source_text="", source_sha256="0")
        session.add(cat)
        papers = {
            "top": paper(session, "Visual Prompt Tuning at Scale", arxiv_id="2611.00001", year=2026),
            "second": paper(session, "Token Prompts for ViTs", arxiv_id="2611.00002"),
            "hostile": paper(session, HOSTILE, doi="10.1000/xyz"),
            "gen": paper(session, "Generated Visual Prompts", openreview_id="abcDEF"),
            "old": paper(session, "An Old Pending Paper", arxiv_id="2610.00009"),
            "accepted": paper(session, "Accepted Pixel Prompts", arxiv_id="2611.00003"),
            "published": paper(session, "Published Prompt Paper", arxiv_id="2611.00004"),
            "upgraded": paper(
                session,
                "Upgraded Paper",
                arxiv_id="2501.00005",
                venue="CVPR",
                year=2026,
                previous_venue="arXiv",
                venue_upgraded_at=IN_WEEK,
            ),
        }
        session.flush()
        session.add(
            EntryRow(
                catalogue_id=cat.id,
                paper_id=papers["upgraded"].id,
                position=0,
                title="Upgraded Paper",
                title_key="upgraded paper",
            )
        )

        def candidate(key: str, relevance: float, labels: list[str], **fields: object) -> None:
            fields.setdefault("created_at", IN_WEEK)
            session.add(
                CandidateRow(
                    paper_id=papers[key].id,
                    catalogue_id=cat.id,
                    relevance=relevance,
                    proposed_labels=labels,
                    label_scores={label: 0.8 for label in labels},
                    **fields,
                )
            )

        candidate("top", 0.97, ["learnable", "token"])
        candidate("second", 0.71, ["learnable"])
        candidate("hostile", 0.55, ["learnable"], low_confidence=True)
        candidate("gen", 0.90, ["generative"])
        candidate("old", 0.40, [], created_at=BEFORE)
        candidate(
            "accepted",
            0.8,
            ["learnable", "pixel"],
            status="accepted",
            decided_at=IN_WEEK,
            final_labels=["learnable", "pixel"],
            reviewer="ana",
            created_at=BEFORE,
        )
        candidate(
            "published", 0.8, ["generative"], status="published", published_at=IN_WEEK, created_at=BEFORE
        )
        run = RunRow(
            kind="nightly",
            started_at=IN_WEEK,
            outcome="partial",
            counts={"sources": {"arxiv_api": {"records": 120}, "arxiv_rss": {"records": 0}}},
            errors={"arxiv_rss": "HTTP 503"},
            health={
                "arxiv_api": {"healthy": True, "reason": None},
                "arxiv_rss": {"healthy": False, "reason": "error: HTTP 503"},
            },
        )
        session.add(run)
        session.flush()
        session.add(
            RefetchWindowRow(
                source="arxiv_rss",
                window_start=BEFORE,
                window_end=IN_WEEK,
                reason="error",
                run_id=run.id,
                created_at=IN_WEEK,  # the run's start, as the pipeline stamps it
            )
        )
        return {key: row.id for key, row in papers.items()}


def queue_at(engine: Engine, *moments: datetime, catalogue: str = "awesome-vpt") -> None:
    """One pending candidate of `catalogue` (created if absent) queued at each moment, for
    the tests of where a week starts and ends; titled by the moment, in UTC."""
    with transaction(engine) as session:
        cat = session.scalar(select(CatalogueRow).where(CatalogueRow.name == catalogue))
        if cat is None:
            cat = CatalogueRow(name=catalogue, preset="awesome-vpt", source_text="", source_sha256="0")
            session.add(cat)
            session.flush()
        for moment in moments:
            title = f"Queued {moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
            row = paper(session, title)
            session.flush()
            session.add(
                CandidateRow(
                    paper_id=row.id, catalogue_id=cat.id, relevance=0.5, proposed_labels=[], created_at=moment
                )
            )
