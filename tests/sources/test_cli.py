"""`vpt-tracker fetch` end to end: replay server, production sources, real SQLite/PostgreSQL."""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select

from vpt_tracker.cli import main
from vpt_tracker.config import load_settings
from vpt_tracker.http import HttpClient
from vpt_tracker.replay import Fault, ReplayServer, default_root
from vpt_tracker.sources import SOURCE_NAMES, build_sources
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CursorRow, PaperRow, SightingRow

COCOOP_ARXIV = "2203.05557"


def _config(tmp_path: Path, server: ReplayServer) -> Path:
    urls = server.urls()
    path = tmp_path / "vpt-tracker.toml"
    path.write_text(
        f"""
[http]
default_min_interval = 0.0
min_interval = {{}}
max_retries = 1
backoff_base = 0.01

[sources.arxiv_api]
base_url = "{urls["arxiv_api"]}"

[sources.arxiv_rss]
base_url = "{urls["arxiv_rss"]}"
categories = ["cs.CV"]

[sources.openreview]
base_url = "{urls["openreview"]}"
venues = [{{ venue_id = "ICLR.cc/2024/Conference", name = "ICLR", year = 2024 }}]

[sources.cvf]
base_url = "{urls["cvf"]}"
conferences = [{{ name = "CVPR", year = 2022 }}]
"""
    )
    return path


def _run(config: Path, *args: str, database: str | None = None) -> Result:
    options = ["--config", str(config)] + (["--database", database] if database else [])
    return CliRunner().invoke(main, [*options, "fetch", *args], catch_exceptions=False)


def test_help() -> None:
    result = CliRunner().invoke(main, ["fetch", "--help"])
    assert result.exit_code == 0 and "--dry-run" in result.output and "arxiv_rss" in result.output


def test_dry_run_prints_and_touches_no_database(tmp_path: Path, replay: ReplayServer) -> None:
    database = tmp_path / "never.db"
    result = _run(
        _config(tmp_path, replay),
        "arxiv_api",
        "--since",
        "2026-08-19",
        "--until",
        "2026-08-20",
        "--dry-run",
        database=f"sqlite:///{database}",
    )
    assert result.exit_code == 0, result.output
    assert "arxiv_api: would store 32 records from 1 page (1 request)" in result.output
    assert "2307.06948  Self-regulating Prompts" in result.output
    assert not database.exists()


def test_dry_run_json(tmp_path: Path, replay: ReplayServer) -> None:
    result = _run(_config(tmp_path, replay), "openreview", "--dry-run", "--json")
    summary = json.loads(result.output)
    assert summary["records"] == 80 and summary["source"] == "openreview" and len(summary["first"]) == 5


def test_json_requests_counts_each_attempt(tmp_path: Path, replay: ReplayServer) -> None:
    """`requests` is every request sent: a 429 answered before the 200 is one of them, as
    in the run records (`runs`)."""
    replay.inject(Fault("status", match="/api/query", status=429, headers={"Retry-After": "0"}, times=1))
    window = ["--since", "2026-08-19", "--until", "2026-08-20"]
    result = _run(_config(tmp_path, replay), "arxiv_api", *window, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [r.status for r in replay.requests] == [429, 200]
    assert (summary["pages"], summary["records"], summary["requests"]) == (1, 32, 2)


def test_fetch_stores_and_a_venue_sighting_upgrades_the_preprint(
    tmp_path: Path, replay: ReplayServer, engine: Engine, db_url: str
) -> None:
    config = _config(tmp_path, replay)
    window = ["--since", "2026-08-19", "--until", "2026-08-20"]
    first = _run(config, "arxiv_api", *window, database=db_url)
    assert first.exit_code == 0, first.output
    assert "stored 32 records" in first.output
    with transaction(engine) as session:
        preprint = session.scalars(select(PaperRow).where(PaperRow.arxiv_id == COCOOP_ARXIV)).one()
        assert preprint.venue == "arXiv"
    replay.requests.clear()
    second = _run(config, "cvf", *window, database=db_url)
    assert second.exit_code == 0, second.output
    assert "stored 30 records" in second.output
    # CoCoOp's listing entry links the stored preprint: its page (abstract) is not fetched.
    pages = [request.path for request in replay.requests if "/html/" in request.path]
    assert len(pages) == 29 and not any("Zhou_Conditional_Prompt_Learning" in path for path in pages)
    with transaction(engine) as session:
        paper = session.scalars(select(PaperRow).where(PaperRow.arxiv_id == COCOOP_ARXIV)).one()
        assert (paper.venue, paper.year, paper.previous_venue) == ("CVPR", 2022, "arXiv")
        assert paper.cvf_url and paper.cvf_url.endswith(
            "Zhou_Conditional_Prompt_Learning_for_Vision-Language_Models_CVPR_2022_paper.html"
        )
        sightings = session.scalar(select(func.count()).select_from(SightingRow))
        cursors = dict(
            session.execute(select(CursorRow.key, CursorRow.value).where(CursorRow.source == "cvf")).all()
        )
    assert sightings == 62
    assert json.loads(cast(str, cursors["CVPR2022"]))["done"] is True
    # Run again: the cursor says the unchanged listing is stored; only the listing is requested.
    replay.requests.clear()
    third = _run(config, "cvf", *window, database=db_url)
    assert "stored 0 records from 0 pages (1 request)" in third.output
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(SightingRow)) == sightings


def test_a_failing_page_stores_nothing_and_keeps_the_cursor(
    tmp_path: Path, replay: ReplayServer, engine: Engine, db_url: str
) -> None:
    config = _config(tmp_path, replay)
    # The 27th paper page keeps failing: the first page (papers 1-25) is stored, the second is not.
    replay.inject(Fault("status", match="Li_Siamese_Contrastive", status=503, times=-1))
    failed = _run(config, "cvf", database=db_url)
    assert failed.exit_code == 1
    assert "Error: fetch failed: cvf: GET" in failed.output and "HTTP 503 after 2 attempts" in failed.output
    with transaction(engine) as session:
        stored = session.scalar(select(func.count()).select_from(SightingRow))
        cursor = session.scalar(select(CursorRow.value).where(CursorRow.source == "cvf"))
    assert stored == 25 and cursor is not None and json.loads(cursor)["offset"] == 25
    # Once the page answers again, the next run resumes at paper 26 and stores the rest.
    replay.clear_faults()
    replay.requests.clear()
    resumed = _run(config, "cvf", database=db_url)
    assert "stored 5 records from 1 page (6 requests)" in resumed.output
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(SightingRow)) == 30


def test_bad_input_exits_2(tmp_path: Path, replay: ReplayServer) -> None:
    config = _config(tmp_path, replay)
    backwards = _run(config, "arxiv_api", "--since", "2026-08-21", "--until", "2026-08-20", "--dry-run")
    assert backwards.exit_code == 2
    assert backwards.output.strip() == "Error: --since 2026-08-21 is after --until 2026-08-20"
    unknown = CliRunner().invoke(main, ["--config", str(config), "fetch", "scholar"])
    assert unknown.exit_code == 2 and "'scholar' is not one of" in unknown.output
    bad_date = CliRunner().invoke(main, ["--config", str(config), "fetch", "cvf", "--since", "yesterday"])
    assert bad_date.exit_code == 2


@pytest.mark.parametrize(
    ("source", "key"),
    [("openreview", "venues"), ("cvf", "conferences"), ("arxiv_rss", "categories")],
)
def test_a_source_with_nothing_configured_to_fetch_is_bad_input(
    tmp_path: Path, replay: ReplayServer, source: str, key: str
) -> None:
    # `venues` is empty by default: `fetch openreview` said "would store 0 records from 0 pages
    # (0 requests)" and exited 0, as if the venues had nothing new.
    config = _config(tmp_path, replay)
    text = config.read_text().split(f"[sources.{source}]")
    text[1] = re.sub(rf"(?m)^{key} = .*$", f"{key} = []", text[1], count=1)
    config.write_text(f"[sources.{source}]".join(text))
    asked = len(replay.requests)
    result = _run(config, source, "--dry-run")
    assert result.exit_code == 2, result.output
    said = f"Error: nothing to fetch: sources.{source}.{key} is empty in the config"
    assert result.output == said + ' (see the README, "Config keys")\n'
    assert len(replay.requests) == asked


def test_a_future_day_is_refused(tmp_path: Path, replay: ReplayServer) -> None:
    config = _config(tmp_path, replay)
    later = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    asked = len(replay.requests)
    for args in (["--until", later], ["--since", later], ["--since", later, "--until", later]):
        result = _run(config, "arxiv_api", *args, "--dry-run")
        assert result.exit_code == 2, result.output
        option = args[0]
        assert result.output.startswith(f"Error: {option} {later} is in the future (today is ")
        assert result.output.count("\n") == 1
    assert len(replay.requests) == asked  # refused before any request


@pytest.mark.parametrize("day", ["0001-01-01", "0225-03-01", "1991-07-31"])
def test_a_day_before_arxiv_opened_is_refused(tmp_path: Path, replay: ReplayServer, day: str) -> None:
    """A typo such as 0225 for 2025: the first days of year 1 were an OverflowError traceback
    (the query starts `lookback_days` earlier), and year 225 went out as "22503010000"."""
    config = _config(tmp_path, replay)
    asked = len(replay.requests)
    for args in (["--since", day, "--until", "2026-08-20"], ["--since", day, "--until", day]):
        result = _run(config, "arxiv_api", *args)
        assert result.exit_code == 2, result.output
        said = f"Error: --since {day} is before 1991-08-01, when arXiv opened: no source has papers that old"
        assert result.output == said + "\n"
    assert len(replay.requests) == asked  # refused before any request


def test_a_window_that_ends_after_now_is_asked_for_again(
    tmp_path: Path, replay: ReplayServer, engine: Engine, db_url: str
) -> None:
    """The default window runs to the end of today: a second fetch today asks for what came since."""
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    if midnight - now < timedelta(seconds=30):
        time.sleep((midnight - now).total_seconds() + 1)
    config = _config(tmp_path, replay)
    first = _run(config, "arxiv_api", database=db_url)
    assert "arxiv_api: stored 32 records from 1 page (1 request)" in first.output
    with transaction(engine) as session:
        cursor = session.scalar(select(CursorRow.value).where(CursorRow.source == "arxiv_api"))
    assert cursor is not None and json.loads(cursor)["done"] is False and json.loads(cursor)["offset"] == 32
    second = _run(config, "arxiv_api", database=db_url)
    assert "arxiv_api: stored 0 records from 1 page (1 request)" in second.output
    # A window that has ended is done once fetched: fetching it again asks for nothing.
    past = ["--since", "2026-08-19", "--until", "2026-08-20"]
    _run(config, "arxiv_api", *past, database=db_url)
    done = _run(config, "arxiv_api", *past, database=db_url)
    assert "arxiv_api: stored 0 records from 0 pages (0 requests)" in done.output


def test_build_sources_follows_the_enabled_flags(tmp_path: Path, replay: ReplayServer) -> None:
    settings = load_settings(_config(tmp_path, replay))
    with HttpClient(settings.http) as client:
        assert [s.name for s in build_sources(settings, client)] == list(SOURCE_NAMES)
        settings.sources.arxiv_rss.enabled = False
        settings.sources.cvf.enabled = False
        assert [s.name for s in build_sources(settings, client)] == ["arxiv_api", "openreview"]


def test_a_paper_page_that_is_gone_is_printed_and_the_rest_is_stored(
    tmp_path: Path, replay: ReplayServer, engine: Engine, db_url: str
) -> None:
    config = _config(tmp_path, replay)
    replay.inject(Fault("status", match="Li_Siamese_Contrastive", status=404, times=-1))
    result = _run(config, "cvf", database=db_url)
    assert result.exit_code == 0, result.output
    assert "stored 30 records from 2 pages (31 requests)" in result.output
    # Logged when it happens, and listed again under the summary.
    last = result.output.splitlines()[-1]
    assert last.startswith("  the paper page https://openaccess.thecvf.com/")
    assert "Li_Siamese_Contrastive" in last
    assert last.endswith("answered HTTP 404; stored without its abstract")
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(SightingRow)) == 30


def test_a_fetch_that_stores_waits_for_no_pipeline_run(
    tmp_path: Path, replay: ReplayServer, engine: Engine, db_url: str
) -> None:
    """A `fetch` during a nightly run (cron started it while the maintainer tried a source)
    ingested beside it: two processes, each with its own identity index, resolving the same
    papers and moving the same source's cursors. It is refused like a second run (exit 75),
    storing nothing; a dry run touches no database and still works."""
    from vpt_tracker.locks import exclusive

    config = _config(tmp_path, replay)
    window = ["--since", "2026-08-19", "--until", "2026-08-20"]
    with exclusive(engine, "pipeline"):
        refused = _run(config, "arxiv_api", *window, database=db_url)
        dry = _run(config, "arxiv_api", *window, "--dry-run", database=db_url)
    assert refused.exit_code == 75, refused.output
    assert "another vpt-tracker pipeline run is in progress" in refused.output
    assert dry.exit_code == 0 and "would store 32 records" in dry.output
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(PaperRow)) == 0
        assert session.scalar(select(func.count()).select_from(CursorRow)) == 0
    after = _run(config, "arxiv_api", *window, database=db_url)
    assert after.exit_code == 0 and "stored 32 records" in after.output


def test_papers_stored_without_abstracts_get_them_once_abstracts_are_on(
    tmp_path: Path, replay: ReplayServer, engine: Engine, db_url: str
) -> None:
    # `fetch_abstracts = false` stored the listing with a finished cursor; turned on, the
    # listing was "unchanged and already stored" and no paper ever got its abstract.
    config = _config(tmp_path, replay)
    off = tmp_path / "off.toml"
    off.write_text(config.read_text() + "fetch_abstracts = false\n")
    listed = _run(off, "cvf", database=db_url)
    assert "stored 30 records from 1 page (1 request)" in listed.output, listed.output
    on = _run(config, "cvf", database=db_url)
    assert "stored 30 records from 2 pages (31 requests)" in on.output, on.output
    with transaction(engine) as session:
        abstracts = session.scalars(select(PaperRow.abstract)).all()
    assert len(abstracts) == 30 and all(abstracts)
    again = _run(off, "cvf", database=db_url)  # the pages hold all the listing does
    assert "stored 0 records from 0 pages (1 request)" in again.output, again.output


def test_a_changed_listing_stores_no_second_sighting_of_a_stored_page(
    tmp_path: Path, engine: Engine, db_url: str
) -> None:
    # Read again, the listing yielded each paper whose abstract was stored as its bare
    # listing record: a sighting of its own (another payload hash), without the abstract.
    root = tmp_path / "replay"
    shutil.copytree(default_root() / "cvf", root / "cvf")
    with ReplayServer(root) as server:
        config = _config(tmp_path, server)
        first = _run(config, "cvf", database=db_url)
        assert "stored 30 records from 2 pages (31 requests)" in first.output, first.output
        listing = root / "cvf" / "CVPR2022.html"
        text = listing.read_text()
        start = text.index('<dt class="ptitle">')
        listing.write_text(text[:start] + text[text.index('<dt class="ptitle">', start + 1) :])
        again = _run(config, "cvf", database=db_url)
        assert "stored 0 records from 2 pages (1 request)" in again.output, again.output
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(SightingRow)) == 30
