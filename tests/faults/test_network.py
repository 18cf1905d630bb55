"""Network faults end within the configured bounds, with the right run outcome.

Each fault hits one source on the replay server (or, for DNS, a `.invalid` host that no
resolver answers); the other sources go on, so the run is `partial` and the failed source
is unhealthy with a one-line reason. Waits are recorded through an injected `sleep`.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from faults.helpers import NOW, RSS_DATE, local_http, replay_settings
from vpt_tracker.cli import main as cli
from vpt_tracker.http import HttpClient
from vpt_tracker.models import RunOutcome
from vpt_tracker.pipeline import RunResult, aware, nightly, pending_refetches
from vpt_tracker.replay import Fault, ReplayServer, default_root
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import SightingRow


def run(
    engine: Engine, db_url: str, tmp_path: Path, replay: ReplayServer, **http: object
) -> tuple[RunResult, list[float], float]:
    settings = replay_settings(replay.urls(), db_url, tmp_path, http=local_http(**http))
    sleeps: list[float] = []
    started = time.monotonic()
    with HttpClient(settings.http, sleep=sleeps.append) as client:
        result = nightly(settings, engine, now=NOW, client=client)
    return result, sleeps, time.monotonic() - started


def assert_only_failed(result: RunResult, source: str, *words: str) -> None:
    assert result.outcome == RunOutcome.PARTIAL and result.exit_code == 1
    assert list(result.errors) == [source], result.errors
    message = result.errors[source]
    assert len(message.splitlines()) == 1 and all(word in message for word in words), message
    assert result.unhealthy() == [source]
    assert all(
        result.counts["sources"][other]["records"] > 0
        for other in result.counts["sources"]
        if other != source
    )


def test_429_storm_honours_retry_after_then_gives_up(engine: Engine, db_url: str, tmp_path: Path) -> None:
    with ReplayServer(rss_date=RSS_DATE) as replay:
        replay.inject(Fault("status", match="/api/query", status=429, headers={"Retry-After": "7"}, times=-1))
        result, sleeps, _ = run(engine, db_url, tmp_path, replay, max_retries=3, backoff_cap=60.0)
        api_requests = [r for r in replay.requests if r.path.endswith("/api/query")]
    assert_only_failed(result, "arxiv_api", "429", "4 attempts")
    assert len(api_requests) == 4 and all(r.status == 429 for r in api_requests)
    assert sleeps == [7.0, 7.0, 7.0]  # Retry-After, not the exponential back-off


def test_retry_after_is_capped(engine: Engine, db_url: str, tmp_path: Path) -> None:
    with ReplayServer(rss_date=RSS_DATE) as replay:
        replay.inject(
            Fault("status", match="/api/query", status=429, headers={"Retry-After": "86400"}, times=-1)
        )
        result, sleeps, _ = run(engine, db_url, tmp_path, replay, max_retries=2, backoff_cap=30.0)
    assert_only_failed(result, "arxiv_api", "429")
    assert sleeps == [30.0, 30.0]  # a day-long Retry-After cannot stall the run


def test_slow_loris_server_hits_the_timeout(engine: Engine, db_url: str, tmp_path: Path) -> None:
    with ReplayServer(rss_date=RSS_DATE) as replay:
        replay.inject(Fault("delay", match="/notes", delay=4.0, times=-1))
        result, _, _ = run(engine, db_url, tmp_path, replay, timeout=0.5, max_retries=1)
        sent = [r.at for r in replay.requests if r.path.endswith("/notes")]
    assert_only_failed(result, "openreview", "Timeout", "2 attempts")
    # The first attempt was cut at the 0.5 s timeout, not waited out for the 4 s the server stalls.
    assert len(sent) == 2 and sent[1] - sent[0] < 3.0


def test_connection_reset(engine: Engine, db_url: str, tmp_path: Path) -> None:
    with ReplayServer(rss_date=RSS_DATE) as replay:
        replay.inject(Fault("reset", match="/rss/", times=-1))
        result, sleeps, _ = run(
            engine, db_url, tmp_path, replay, max_retries=2, backoff_base=2.0, backoff_cap=10.0
        )
    assert_only_failed(result, "arxiv_rss", "3 attempts")
    assert sleeps == [1.0, 2.0]  # exponential back-off between the attempts


def test_body_cut_short_is_retried_then_reported(engine: Engine, db_url: str, tmp_path: Path) -> None:
    with ReplayServer(rss_date=RSS_DATE) as replay:
        replay.inject(Fault("truncate", match="CVPR2022", times=-1))
        result, _, _ = run(engine, db_url, tmp_path, replay, max_retries=1)
    assert_only_failed(result, "cvf", "2 attempts")


def test_dns_failure_on_an_invalid_host(engine: Engine, db_url: str, tmp_path: Path) -> None:
    with ReplayServer(rss_date=RSS_DATE) as replay:
        urls = {**replay.urls(), "openreview": "http://openreview.invalid"}
        settings = replay_settings(urls, db_url, tmp_path, http=local_http(max_retries=1, timeout=5.0))
        sleeps: list[float] = []
        with HttpClient(settings.http, sleep=sleeps.append) as client:
            result = nightly(settings, engine, now=NOW, client=client)
    assert_only_failed(result, "openreview", "openreview.invalid", "ConnectError")
    assert len(sleeps) == 1


def test_an_arxiv_empty_page_that_outlasts_the_retries_fails_the_source_until_the_refetch(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    # The replay's one page of 32 results, answered empty (same header) three times in a row.
    demo = (default_root() / "arxiv_api" / "demo.xml").read_bytes()
    empty = demo.split(b"<entry>", 1)[0] + b"</feed>\n"
    with ReplayServer(rss_date=RSS_DATE) as replay:
        replay.inject(Fault("status", match="/api/query", status=200, body=empty, times=3))
        first, _, _ = run(engine, db_url, tmp_path, replay)
        assert_only_failed(first, "arxiv_api", "reachable results are still missing")
        assert "empty page at start=0 of 32 results 3 times" in first.errors["arxiv_api"]
        assert first.counts["sources"]["arxiv_api"]["records"] == 0
        [queued] = pending_refetches(engine)
        assert queued.source == "arxiv_api"
        # Before, the empty page ended the window as done: its 32 papers were never fetched.
        settings = replay_settings(replay.urls(), db_url, tmp_path, http=local_http())
        with HttpClient(settings.http) as client:
            second = nightly(settings, engine, now=NOW + timedelta(hours=6), client=client)
    assert second.outcome == RunOutcome.OK
    assert second.counts["sources"]["arxiv_api"]["refetched"] == [
        f"{aware(queued.window_start).isoformat()}/{aware(queued.window_end).isoformat()}"
    ]
    assert pending_refetches(engine, "arxiv_api") == []  # (the others, fetched twice a day, look thin)
    with transaction(engine) as session:
        stored = session.scalar(
            select(func.count()).select_from(SightingRow).where(SightingRow.source == "arxiv_api")
        )
    assert stored == 32


def served(replay: ReplayServer) -> dict[str, list[int | None]]:
    """The statuses the server answered, per source (by the paths each source asks for)."""
    by_source: dict[str, list[int | None]] = {"arxiv_api": [], "arxiv_rss": [], "openreview": [], "cvf": []}
    for request in replay.requests:
        if request.path.endswith("/api/query"):
            name = "arxiv_api"
        elif request.path.startswith("/rss/"):
            name = "arxiv_rss"
        elif request.path.endswith("/notes"):
            name = "openreview"
        else:
            name = "cvf"
        by_source[name].append(request.status)
    return by_source


def counted(result: RunResult) -> dict[str, int]:
    return {name: figures["requests"] for name, figures in result.counts["sources"].items()}


def test_a_run_counts_every_request_it_sent_retries_too(engine: Engine, db_url: str, tmp_path: Path) -> None:
    """Each source told the run how many requests a page took, and all but CVF said one: a
    429 or a 503 answered before the 200 was not counted, so `runs` showed fewer requests
    than the hosts got. The run now counts what the client sent, as `fetch` does."""
    with ReplayServer(rss_date=RSS_DATE) as replay:
        replay.inject(Fault("status", match="/api/query", status=503, times=1))
        replay.inject(Fault("status", match="/rss/", status=429, headers={"Retry-After": "0"}, times=2))
        result, _, _ = run(engine, db_url, tmp_path, replay, max_retries=3)
        statuses = served(replay)
    assert result.outcome == RunOutcome.OK, result.errors
    assert statuses["arxiv_api"] == [503, 200] and statuses["arxiv_rss"] == [429, 429, 200]
    assert counted(result) == {name: len(answers) for name, answers in statuses.items()}
    # What `runs --json` shows is what the run recorded.
    shown = CliRunner().invoke(cli, ["--database", db_url, "runs", "--json"], env={"VPT_CONFIG": ""})
    assert shown.exit_code == 0, shown.output
    [row] = json.loads(shown.stdout)
    recorded = {name: figures["requests"] for name, figures in row["counts"]["sources"].items()}
    assert recorded == counted(result)


def test_a_run_counts_the_requests_of_a_failed_source_and_304s(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """A source that failed stored no page and counted no request, whatever its retries
    cost; a feed read again in one run (its refetched window, then the run's own) answers
    304 the second time, and a feed outside the window stored no page: neither counted."""
    with ReplayServer(rss_date=RSS_DATE) as replay:
        replay.inject(Fault("status", match="/rss/", status=503, times=-1))
        first, _, _ = run(engine, db_url, tmp_path, replay, max_retries=1)
        assert served(replay)["arxiv_rss"] == [503, 503]
        assert first.errors.keys() == {"arxiv_rss"} and counted(first)["arxiv_rss"] == 2
        replay.clear_faults()
        replay.requests.clear()
        settings = replay_settings(replay.urls(), db_url, tmp_path, http=local_http())
        with HttpClient(settings.http) as client:
            second = nightly(settings, engine, now=NOW + timedelta(hours=2), client=client)
        statuses = served(replay)
    assert second.counts["sources"]["arxiv_rss"]["refetched"]  # the failed window, read first
    assert statuses["arxiv_rss"] == [200, 304]
    assert counted(second) == {name: len(answers) for name, answers in statuses.items()}
