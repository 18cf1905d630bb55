"""The nightly run's CVF source skips the pages of listed preprints whose abstract is stored.

`pipeline._build_sources` gives the CVF source a store lookup (sources never import the
store); these runs go through it against the packaged replay data on a loopback server.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from vpt_tracker.config import (
    ArxivApiConfig,
    ArxivRssConfig,
    CvfConference,
    CvfConfig,
    HttpConfig,
    OpenReviewConfig,
    Settings,
    SourcesConfig,
)
from vpt_tracker.http import HttpClient
from vpt_tracker.ingest import ingest_records
from vpt_tracker.models import RawRecord, RunOutcome, Window
from vpt_tracker.pipeline import backfill, nightly
from vpt_tracker.replay import ReplayServer, default_root
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import PaperRow, SightingRow

NOW = datetime(2026, 8, 21, 6, 30, tzinfo=UTC)
DAY = NOW.date()
CONFERENCES = [CvfConference(name="CVPR", year=2022), CvfConference(name="ICCV", year=2023)]
COCOOP_ID, PROMPTSRC_ID = "2203.05557", "2307.06948"  # the two listed papers that link a preprint
COCOOP_PAGE = (
    "/content/CVPR2022/html/Zhou_Conditional_Prompt_Learning_for_Vision-Language_Models_CVPR_2022_paper.html"
)
COCOOP_URL = "https://openaccess.thecvf.com" + COCOOP_PAGE
PROMPTSRC_PAGE = (
    "/content/ICCV2023/html/"
    "Khattak_Self-regulating_Prompts_Foundational_Model_Adaptation_without_Forgetting_ICCV_2023_paper.html"
)
LISTED = 30 + 60  # papers on the two recorded listings
STORED_ABSTRACT = "The abstract the store already holds for the CoCoOp preprint."


def settings(db_url: str, server: ReplayServer, *, arxiv_api: bool) -> Settings:
    urls = server.urls()
    return Settings(
        database_url=db_url,
        http=HttpConfig(max_retries=0, default_min_interval=0, min_interval={}, host_groups={}, timeout=5),
        sources=SourcesConfig(
            arxiv_api=ArxivApiConfig(enabled=arxiv_api, base_url=urls["arxiv_api"]),
            arxiv_rss=ArxivRssConfig(enabled=False),
            openreview=OpenReviewConfig(enabled=False),
            cvf=CvfConfig(base_url=urls["cvf"], conferences=CONFERENCES),
        ),
    )


def page_requests(server: ReplayServer) -> list[str]:
    return [r.path for r in server.requests if r.path.startswith("/content/")]


def paper(engine: Engine, arxiv_id: str) -> PaperRow:
    with transaction(engine) as session:
        row = session.scalar(select(PaperRow).where(PaperRow.arxiv_id == arxiv_id))
        assert row is not None
        session.expunge(row)
        return row


def test_a_stored_preprint_is_not_fetched_again_and_keeps_its_abstract(engine: Engine, db_url: str) -> None:
    ingest_records(
        engine,
        [
            RawRecord(
                source="arxiv_api",
                source_id=COCOOP_ID,
                title="Conditional Prompt Learning for Vision-Language Models",
                abstract=STORED_ABSTRACT,
                authors=("Kaiyang Zhou", "Jingkang Yang", "Chen Change Loy", "Ziwei Liu"),
                arxiv_id=COCOOP_ID,
            )
        ],
    )
    with ReplayServer() as server:
        config = settings(db_url, server, arxiv_api=False)
        client = HttpClient(config.http)
        try:
            result = nightly(config, engine, now=NOW, client=client)
        finally:
            client.close()
        pages = page_requests(server)

    assert result.outcome == RunOutcome.OK
    assert COCOOP_PAGE not in pages  # its preprint is stored with an abstract
    assert PROMPTSRC_PAGE in pages  # links a preprint the store lacks: the page is the abstract's source
    assert len(pages) == len(set(pages)) == LISTED - 1
    assert result.counts["sources"]["cvf"]["requests"] == len(server.requests) == 2 + LISTED - 1
    cocoop = paper(engine, COCOOP_ID)
    assert cocoop.abstract == STORED_ABSTRACT
    assert (cocoop.venue, cocoop.year, cocoop.previous_venue) == ("CVPR", 2022, "arXiv")
    assert cocoop.cvf_url == COCOOP_URL
    assert paper(engine, PROMPTSRC_ID).abstract.startswith("Prompt learning has emerged")


def test_preprints_the_arxiv_source_stored_earlier_in_the_run_are_not_fetched(
    engine: Engine, db_url: str
) -> None:
    """arXiv sources run first and every page is committed, so CVF's lookup sees their papers."""
    with ReplayServer() as server:
        config = settings(db_url, server, arxiv_api=True)
        client = HttpClient(config.http)
        try:
            result = nightly(config, engine, now=NOW, client=client, window=Window.for_days(DAY, DAY))
        finally:
            client.close()
        pages = page_requests(server)

    assert result.outcome == RunOutcome.OK
    assert result.counts["sources"]["arxiv_api"]["records"] > 0
    assert COCOOP_PAGE not in pages and PROMPTSRC_PAGE not in pages
    assert len(pages) == LISTED - 2
    for arxiv_id, venue in ((COCOOP_ID, "CVPR"), (PROMPTSRC_ID, "ICCV")):
        row = paper(engine, arxiv_id)
        assert row.abstract and row.venue == venue and row.cvf_url


def test_a_changed_listing_does_not_fetch_again_the_pages_whose_abstract_is_stored(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    # A changed listing is read again; its papers' pages were skipped only by arXiv id, so
    # every paper without an arXiv link cost its page once more (28 of the 29 left here).
    root = tmp_path / "replay"
    shutil.copytree(default_root() / "cvf", root / "cvf")
    with ReplayServer(root) as server:
        config = settings(db_url, server, arxiv_api=False)
        with HttpClient(config.http) as client:
            first = nightly(config, engine, now=NOW, client=client)
        assert first.outcome == RunOutcome.OK and len(page_requests(server)) == LISTED
        listing = root / "cvf" / "CVPR2022.html"
        text = listing.read_text()
        start = text.index('<dt class="ptitle">')
        listing.write_text(text[:start] + text[text.index('<dt class="ptitle">', start + 1) :])
        server.requests.clear()
        with HttpClient(config.http) as client:
            second = nightly(config, engine, now=NOW + timedelta(days=1), client=client)
        assert second.outcome == RunOutcome.OK
        assert [r.path for r in server.requests] == ["/CVPR2022", "/ICCV2023"]  # the listings only
    # Its 29 papers are stored with their pages: yielded again, each was a second sighting
    # without its abstract.
    assert second.counts["sources"]["cvf"]["records"] == 0
    with transaction(engine) as session:
        abstracts = session.scalars(select(PaperRow.abstract)).all()
    assert len(abstracts) == LISTED and all(abstracts)  # every paper keeps its abstract
    assert len(cvf_sightings(engine)) == LISTED and all(has for _url, has in cvf_sightings(engine))


def cvf_sightings(engine: Engine) -> list[tuple[str, bool]]:
    """(page URL, has an abstract) of each stored CVF sighting."""
    with transaction(engine) as session:
        rows = session.execute(
            select(SightingRow.source_id, SightingRow.payload).where(SightingRow.source == "cvf")
        ).all()
    return [(source_id, bool(payload.get("abstract"))) for source_id, payload in rows]


def test_a_backfill_over_the_nightly_window_adds_no_second_cvf_sighting(engine: Engine, db_url: str) -> None:
    # The backfill reads the listings again under cursors of its own; every paper whose
    # abstract the nightly stored came back as its bare listing record, whose payload hash
    # differs from the stored page record's: a second, abstract-less sighting (90 -> 178).
    with ReplayServer() as server:
        config = settings(db_url, server, arxiv_api=True)
        with HttpClient(config.http) as client:
            first = nightly(config, engine, now=NOW, client=client, window=Window.for_days(DAY, DAY))
        assert first.outcome == RunOutcome.OK
        stored = cvf_sightings(engine)
        assert len(stored) == len({url for url, _ in stored}) == LISTED
        server.requests.clear()
        with HttpClient(config.http) as client:
            again = backfill(config, engine, DAY - timedelta(days=6), DAY, now=NOW, client=client)
        assert again.outcome == RunOutcome.OK
        assert page_requests(server) == []  # every abstract is stored: the listings only
    assert sorted(cvf_sightings(engine)) == sorted(stored)  # no second sighting of a page
    with transaction(engine) as session:
        abstracts = session.scalars(select(PaperRow.abstract).where(PaperRow.cvf_url.is_not(None))).all()
    assert len(abstracts) == LISTED and all(abstracts)
