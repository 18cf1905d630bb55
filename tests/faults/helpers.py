"""What the fault tests share: a server for arbitrary payloads, settings pointing every
source at a local server, and a snapshot of the store that two runs can be compared by."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from vpt_tracker.config import (
    ArxivApiConfig,
    ArxivRssConfig,
    CvfConference,
    CvfConfig,
    HttpConfig,
    OpenReviewConfig,
    OpenReviewVenue,
    Settings,
    SourcesConfig,
)
from vpt_tracker.replay import QuietHTTPServer
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, CursorRow, PaperRow, SightingRow

# The replay RSS file of 2026-08-20 announces at 04:00 UTC: a nightly run at this moment
# has it in its window [NOW - 1 day, NOW).
NOW = datetime(2026, 8, 20, 6, 30, tzinfo=UTC)
RSS_DATE = "2026-08-20"
VENUES = [OpenReviewVenue(venue_id="ICLR.cc/2024/Conference", name="ICLR", year=2024)]
CONFERENCES = [CvfConference(name="CVPR", year=2022), CvfConference(name="ICCV", year=2023)]


def local_http(**overrides: Any) -> HttpConfig:
    """No politeness interval (the server is ours), few retries, short timeouts."""
    values: dict[str, Any] = {
        "default_min_interval": 0.0,
        "min_interval": {},
        "host_groups": {},
        "max_retries": 0,
        "timeout": 5.0,
        "backoff_cap": 1.0,
    }
    values.update(overrides)
    return HttpConfig(**values)


def replay_settings(
    urls: dict[str, str],
    database_url: str,
    data_dir: Path,
    *,
    http: HttpConfig | None = None,
    only: tuple[str, ...] = ("arxiv_api", "arxiv_rss", "openreview", "cvf"),
    **extra: Any,
) -> Settings:
    """All four sources on a local server (`ReplayServer.urls()`), those not in `only` disabled."""
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        http=http or local_http(),
        sources=SourcesConfig(
            arxiv_api=ArxivApiConfig(enabled="arxiv_api" in only, base_url=urls["arxiv_api"]),
            arxiv_rss=ArxivRssConfig(
                enabled="arxiv_rss" in only, base_url=urls["arxiv_rss"], categories=["cs.CV"]
            ),
            openreview=OpenReviewConfig(
                enabled="openreview" in only, base_url=urls["openreview"], venues=VENUES
            ),
            cvf=CvfConfig(enabled="cvf" in only, base_url=urls["cvf"], conferences=CONFERENCES),
        ),
        **extra,
    )


@dataclass
class Snapshot:
    """The store's content, without ids or times: what must be equal after a crash and rerun."""

    papers: list[tuple[Any, ...]]
    sightings: list[tuple[Any, ...]]
    candidates: list[tuple[Any, ...]]
    cursors: list[tuple[Any, ...]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "papers": len(self.papers),
            "sightings": len(self.sightings),
            "candidates": len(self.candidates),
        }


def snapshot(engine: Engine) -> Snapshot:
    with transaction(engine) as session:
        papers = sorted(
            (p.title_key, p.arxiv_id, p.doi, p.openreview_id, p.cvf_url, p.venue, p.year, p.title)
            for p in session.scalars(select(PaperRow))
        )
        by_id = {p.id: p.title_key for p in session.scalars(select(PaperRow))}
        sightings = sorted(
            (s.source, s.source_id, s.payload_hash, by_id[s.paper_id])
            for s in session.scalars(select(SightingRow))
        )
        catalogues = {c.id: c.name for c in session.scalars(select(CatalogueRow))}
        candidates = sorted(
            (catalogues[c.catalogue_id], by_id[c.paper_id], c.status, round(c.relevance, 6))
            for c in session.scalars(select(CandidateRow))
        )
        cursors = sorted((c.source, c.key) for c in session.scalars(select(CursorRow)))
    return Snapshot(papers, sightings, candidates, cursors)


@dataclass
class PayloadServer:
    """Serves `body` (with `status` and `content_type`) for every GET; change them between requests."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    paths: list[str] = field(default_factory=list)
    base_url: str = ""

    def __repr__(self) -> str:  # hypothesis prints it on failure: not the megabytes of body
        return f"PayloadServer({self.base_url}, {len(self.body)} bytes, {len(self.paths)} requests)"


@contextmanager
def payload_server() -> Iterator[PayloadServer]:
    state = PayloadServer()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            state.paths.append(self.path)
            body = state.body
            self.send_response(state.status)
            self.send_header("Content-Type", state.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = QuietHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def write_config(path: Path, urls: dict[str, str], database_url: str, data_dir: Path) -> Path:
    """A `vpt-tracker.toml` with every source on the local server, for CLI subprocesses."""
    venue = VENUES[0]
    conferences = "\n".join(
        f'[[sources.cvf.conferences]]\nname = "{c.name}"\nyear = {c.year}\n' for c in CONFERENCES
    )
    path.write_text(
        f"""database_url = "{database_url}"
data_dir = "{data_dir}"

[http]
default_min_interval = 0.0
min_interval = {{}}
host_groups = {{}}
max_retries = 0
timeout = 30.0

[sources.arxiv_api]
base_url = "{urls["arxiv_api"]}"

[sources.arxiv_rss]
base_url = "{urls["arxiv_rss"]}"
categories = ["cs.CV"]

[sources.openreview]
base_url = "{urls["openreview"]}"

[[sources.openreview.venues]]
venue_id = "{venue.venue_id}"
name = "{venue.name}"
year = {venue.year}

[sources.cvf]
base_url = "{urls["cvf"]}"

{conferences}
""",
        encoding="utf-8",
    )
    return path


TESTS = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    """The test's environment, for a child that imports the tests' helper modules."""
    return {**os.environ, "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def start_held(
    child: Path, spec: dict[str, Any], hold: Path, seconds: float = 180
) -> subprocess.Popen[bytes]:
    """Start a crash child (`*_child.py SPEC`) that holds at its point instead of dying, and
    wait until it is there (it touches `hold/ready`); touch `hold/go` to let it finish."""
    process = subprocess.Popen(
        [sys.executable, str(child), json.dumps({**spec, "hold": str(hold)})],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + seconds
    while not (hold / "ready").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate()
            raise AssertionError(f"the child never got to its point: {(out + err).decode()[-2000:]}")
        time.sleep(0.05)
    return process


CRASH_CATALOGUE = "awesome-vpt"
LIST_FIXTURE = (
    Path(__file__).resolve().parents[1]
    / "fixtures/lists/yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"
)


def crash_settings(urls: dict[str, str], database_url: str, data_dir: Path) -> Settings:
    """Every source, and one catalogue scored with its preset's shipped model."""
    from vpt_tracker.config import CatalogueConfig

    settings = replay_settings(
        urls,
        database_url,
        data_dir,
        catalogues=[CatalogueConfig(name=CRASH_CATALOGUE, preset=CRASH_CATALOGUE)],
    )
    # CVF listings only: the paper pages would add 90 requests to every one of the runs.
    settings.sources.cvf.fetch_abstracts = False
    return settings


def import_crash_catalogue(engine: Engine) -> None:
    from vpt_tracker.catalogue.service import import_catalogue

    import_catalogue(
        engine, CRASH_CATALOGUE, LIST_FIXTURE.read_text(encoding="utf-8"), preset=CRASH_CATALOGUE
    )
