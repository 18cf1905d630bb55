"""The nightly pipeline against real recorded arXiv feeds served on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from ops.feeds import RSS, client, feed_server, rss_settings
from vpt_tracker.errors import UserError
from vpt_tracker.locks import AlreadyRunning, exclusive
from vpt_tracker.models import RunOutcome
from vpt_tracker.pipeline import aware, backfill, backfill_windows, nightly, pending_refetches, recent_runs
from vpt_tracker.sources.arxiv_rss import parse_feed
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CursorRow, PaperRow, RefetchWindowRow, RunRow, SightingRow

# The 2026-08-20 feeds announce Wednesday 2026-08-19 at 04:00 UTC.
WED = datetime(2026, 8, 19, 6, 30, tzinfo=UTC)
CV_ITEMS, CL_ITEMS = 171, 134


def distinct_sightings(*feeds: tuple[str, str]) -> int:
    """Distinct (id, content) records in these feeds: what the store keeps as sightings."""
    seen = set()
    for fixture, category in feeds:
        for record in parse_feed((RSS / fixture).read_bytes(), category).records:
            seen.add((record.source_id, record.payload_hash))
    return len(seen)


BOTH = distinct_sightings(("2026-08-20-cs-cv.xml", "cs.CV"), ("2026-08-20-cs-cl.xml", "cs.CL"))


def count(engine: Engine, table: type) -> int:
    with transaction(engine) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def test_nightly_stores_records_and_cursors_and_records_the_run(engine: Engine, db_url: str) -> None:
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        routes.feed("/rss/cs.CL", "2026-08-20-cs-cl.xml")
        settings = rss_settings(db_url, base, ["cs.CV", "cs.CL"])
        result = nightly(settings, engine, now=WED, client=client(settings))

        assert result.outcome == RunOutcome.OK and result.exit_code == 0
        rss = result.counts["sources"]["arxiv_rss"]
        assert rss["records"] == CV_ITEMS + CL_ITEMS and rss["pages"] == 2
        assert result.health["arxiv_rss"]["healthy"] is True
        assert count(engine, SightingRow) == BOTH
        assert 0 < count(engine, PaperRow) <= CV_ITEMS + CL_ITEMS  # cross-lists merge
        [row] = recent_runs(engine)
        assert row.outcome == "ok" and row.finished_at is not None and row.duration_s is not None
        assert row.window_start and aware(row.window_start) == WED - timedelta(days=1)
        assert row.window_end and aware(row.window_end) == WED
        with transaction(engine) as session:
            keys = set(session.scalars(select(CursorRow.key).where(CursorRow.source == "arxiv_rss")))
        assert keys == {"cs.CV", "cs.CL"}

        # The next run starts where this window ended, and stores nothing twice.
        second = nightly(settings, engine, now=WED + timedelta(hours=2), client=client(settings))
        assert second.window is not None and second.window.start == WED
        assert second.counts["records"] == 0 and second.outcome == RunOutcome.OK
        assert count(engine, SightingRow) == BOTH


def test_failed_source_is_unhealthy_and_its_window_is_refetched_next_run(engine: Engine, db_url: str) -> None:
    with feed_server() as (routes, base):
        routes.fail("/rss/cs.CV")
        settings = rss_settings(db_url, base, ["cs.CV"])
        first = nightly(settings, engine, now=WED, client=client(settings))
        assert first.outcome == RunOutcome.FAILED and first.exit_code == 1
        assert "503" in first.errors["arxiv_rss"]
        assert first.health["arxiv_rss"]["healthy"] is False
        [queued] = pending_refetches(engine)
        assert queued.source == "arxiv_rss"
        assert (aware(queued.window_start), aware(queued.window_end)) == (WED - timedelta(days=1), WED)
        assert count(engine, SightingRow) == 0

        # The outage is over; the next run's own window is later, but the missed one is fetched first.
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        second = nightly(settings, engine, now=WED + timedelta(hours=6), client=client(settings))
        assert second.window is not None and second.window.start == WED
        assert second.outcome == RunOutcome.OK
        assert second.counts["sources"]["arxiv_rss"]["refetched"] == [
            f"{(WED - timedelta(days=1)).isoformat()}/{WED.isoformat()}"
        ]
        assert count(engine, SightingRow) == CV_ITEMS
        assert pending_refetches(engine) == []
        with transaction(engine) as session:
            done = session.scalar(select(RefetchWindowRow.done_at))
        assert done is not None and aware(done) == WED + timedelta(hours=6)


def seed_history(engine: Engine, weekday_runs: list[int], now: datetime) -> None:
    """Earlier nightly runs on the same weekday with these record counts."""
    with transaction(engine) as session:
        for weeks_ago, records in enumerate(weekday_runs, start=1):
            started = now - timedelta(weeks=weeks_ago)
            session.add(
                RunRow(
                    kind="nightly",
                    started_at=started,
                    outcome="ok",
                    window_start=started - timedelta(days=1),
                    window_end=started,
                    counts={"sources": {"arxiv_rss": {"records": records}}},
                    health={"arxiv_rss": {"healthy": True, "weekday": now.weekday(), "error": None}},
                )
            )


SAT = datetime(2024, 6, 8, 6, 30, tzinfo=UTC)  # the empty feed announces Saturday 2024-06-08


def test_empty_weekend_feed_is_healthy_when_weekends_are_usually_empty(engine: Engine, db_url: str) -> None:
    seed_history(engine, [0, 0, 0, 0], SAT)
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2024-06-09-cs-cv.xml")
        settings = rss_settings(db_url, base, ["cs.CV"])
        result = nightly(settings, engine, now=SAT, client=client(settings))
    assert result.outcome == RunOutcome.OK
    assert result.health["arxiv_rss"]["healthy"] is True and result.health["arxiv_rss"]["usual"] == 0
    assert pending_refetches(engine) == []


def test_far_fewer_records_than_usual_is_unhealthy_and_queued(engine: Engine, db_url: str) -> None:
    seed_history(engine, [180, 150, 0, 170, 160], SAT)  # the 5th is beyond the history of 4
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2024-06-09-cs-cv.xml")
        settings = rss_settings(db_url, base, ["cs.CV"])
        result = nightly(settings, engine, now=SAT, client=client(settings))
    state = result.health["arxiv_rss"]
    assert state["healthy"] is False and state["usual"] == 160  # median of 180, 150, 0, 170
    assert state["reason"] == "0 records, usually 160 on this weekday"
    assert result.unhealthy() == ["arxiv_rss"]
    assert result.outcome == RunOutcome.OK  # nothing errored; the health says what is odd
    [queued] = pending_refetches(engine)
    assert queued.reason == state["reason"]


def test_overlapping_run_is_refused(engine: Engine, db_url: str) -> None:
    settings = rss_settings(db_url, "http://127.0.0.1:9", ["cs.CV"])
    with exclusive(engine, "pipeline"), pytest.raises(AlreadyRunning) as caught:
        nightly(settings, engine, now=WED, sources=[])
    assert caught.value.exit_code == 75
    assert count(engine, RunRow) == 0  # the refused run left no trace


def test_sigkill_mid_run_loses_nothing_and_the_next_run_completes_the_window(
    engine: Engine, db_url: str
) -> None:
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        routes.feed("/rss/cs.CL", "2026-08-20-cs-cl.xml")
        script = textwrap.dedent(
            f"""
            import os, signal
            from datetime import datetime
            from ops.feeds import client, rss_settings
            from vpt_tracker.pipeline import nightly
            from vpt_tracker.store import make_engine

            settings = rss_settings({db_url!r}, {base!r}, ["cs.CV", "cs.CL"])
            engine = make_engine({db_url!r})
            def die(source, records):  # killed right after the first page was committed
                os.kill(os.getpid(), signal.SIGKILL)
            nightly(settings, engine, now=datetime.fromisoformat({WED.isoformat()!r}),
                    client=client(settings), progress=die)
            """
        )
        tests_dir = os.path.dirname(os.path.dirname(__file__))
        env = {**os.environ, "PYTHONPATH": tests_dir + os.pathsep + os.environ.get("PYTHONPATH", "")}
        child = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
        assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]

        [dead] = recent_runs(engine)
        assert dead.outcome == "running"
        assert count(engine, SightingRow) == CV_ITEMS  # the first page, with its cursor

        settings = rss_settings(db_url, base, ["cs.CV", "cs.CL"])
        later = WED + timedelta(hours=1)
        result = nightly(settings, engine, now=later, client=client(settings))
    assert result.outcome == RunOutcome.OK
    assert result.counts["recovered_runs"] == [dead.id]
    # The dead run's window was resumed: cs.CV was not stored again, cs.CL was fetched.
    assert result.counts["sources"]["arxiv_rss"]["records"] == CL_ITEMS
    assert count(engine, SightingRow) == BOTH
    assert result.window is not None and dead.window_start is not None
    assert (result.window.start, result.window.end) == (aware(dead.window_start), later)
    runs = {row.id: row for row in recent_runs(engine)}
    assert runs[dead.id].outcome == "failed" and "interrupted" in runs[dead.id].errors["run"]


def test_backfill_windows_and_resume(engine: Engine, db_url: str) -> None:
    days = backfill_windows(datetime(2026, 8, 1).date(), datetime(2026, 8, 20).date(), 7)
    assert [(w.start.day, w.end.day) for w in days] == [(1, 8), (8, 15), (15, 21)]
    with pytest.raises(UserError, match="before"):
        backfill_windows(datetime(2026, 8, 2).date(), datetime(2026, 8, 1).date())

    with feed_server() as (routes, base):
        routes.fail("/rss/cs.CV")
        settings = rss_settings(db_url, base, ["cs.CV"])
        now = datetime(2026, 8, 21, 9, 0, tzinfo=UTC)
        since, until = datetime(2026, 8, 13).date(), datetime(2026, 8, 19).date()
        first = backfill(settings, engine, since, until, now=now, client=client(settings), step_days=3)
        assert first.outcome == RunOutcome.FAILED and first.counts["windows"] == 3
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        second = backfill(settings, engine, since, until, now=now, client=client(settings), step_days=3)
        assert second.outcome == RunOutcome.OK
        assert second.counts["records"] == CV_ITEMS  # only the window holding the announcement
        third = backfill(settings, engine, since, until, now=now, client=client(settings), step_days=3)
        assert third.counts["windows_skipped"] == 3 and third.counts["records"] == 0
    assert count(engine, SightingRow) == CV_ITEMS


def test_ctrl_c_mid_run_marks_the_run_failed_and_the_next_run_fetches_its_window(
    engine: Engine, db_url: str
) -> None:
    def interrupt(source: str, records: int) -> None:
        raise KeyboardInterrupt

    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        settings = rss_settings(db_url, base, ["cs.CV"])
        with pytest.raises(KeyboardInterrupt):
            nightly(settings, engine, now=WED, client=client(settings), progress=interrupt)
        [row] = recent_runs(engine)
        assert row.outcome == "failed" and row.errors["run"] == "crashed: KeyboardInterrupt: "
        assert count(engine, SightingRow) == CV_ITEMS  # the page was committed before the interrupt

        later = WED + timedelta(hours=1)
        result = nightly(settings, engine, now=later, client=client(settings))
    assert result.window is not None and row.window_start is not None
    # Resumed as a killed run's window is, and its papers are scored (`recovered_runs`).
    assert (result.window.start, result.window.end) == (aware(row.window_start), later)
    assert result.counts["recovered_runs"] == [row.id]
    assert result.outcome == RunOutcome.OK
    assert count(engine, SightingRow) == CV_ITEMS
