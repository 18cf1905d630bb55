"""The nightly pipeline against real recorded arXiv feeds served on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from ops.feeds import RSS, client, feed_server, rss_settings
from vpt_tracker.catalogue.service import import_catalogue
from vpt_tracker.classify.model import CatalogueModel
from vpt_tracker.config import (
    ArxivApiConfig,
    ArxivRssConfig,
    CatalogueConfig,
    CvfConference,
    CvfConfig,
    HttpConfig,
    KeywordRules,
    OpenReviewConfig,
    Settings,
    SourcesConfig,
)
from vpt_tracker.enqueue import score_and_enqueue
from vpt_tracker.errors import UserError
from vpt_tracker.locks import AlreadyRunning, exclusive
from vpt_tracker.models import RunOutcome
from vpt_tracker.pipeline import aware, backfill, backfill_windows, nightly, pending_refetches, recent_runs
from vpt_tracker.replay import Fault, ReplayServer, default_root
from vpt_tracker.sources.arxiv_rss import parse_feed
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import (
    CandidateRow,
    CatalogueRow,
    CursorRow,
    PaperRow,
    RefetchWindowRow,
    RunRow,
    ScoringBacklogRow,
    SightingRow,
)

# The 2026-08-20 feeds announce Wednesday 2026-08-19 at 04:00 UTC.
WED = datetime(2026, 8, 19, 6, 30, tzinfo=UTC)
CV_ITEMS, CL_ITEMS = 171, 134
SOURCE_FIXTURES = (
    Path(__file__).resolve().parents[1] / "fixtures" / "sources"
)  # the recorded arXiv API series
COCOOP_PAGE = "Zhou_Conditional_Prompt_Learning_for_Vision-Language_Models_CVPR_2022_paper.html"


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


def owed(engine: Engine) -> int:
    """The `scoring_backlog` rows still owed (a scored one stays, stamped, for the digest)."""
    with transaction(engine) as session:
        return int(session.scalar(select(func.count()).where(ScoringBacklogRow.scored_at.is_(None))) or 0)


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


def seed_history(engine: Engine, weekday_runs: list[int], now: datetime, zone: tzinfo = UTC) -> None:
    """Earlier nightly runs on the same weekday with these record counts, each stored with
    its weekday in `zone` (the schedule's time zone), as a run stores it."""
    with transaction(engine) as session:
        for weeks_ago, records in enumerate(weekday_runs, start=1):
            started = now - timedelta(weeks=weeks_ago)
            weekday = started.astimezone(zone).weekday()
            session.add(
                RunRow(
                    kind="nightly",
                    started_at=started,
                    outcome="ok",
                    window_start=started - timedelta(days=1),
                    window_end=started,
                    counts={"sources": {"arxiv_rss": {"records": records}}},
                    health={"arxiv_rss": {"healthy": True, "weekday": weekday, "error": None}},
                )
            )


SAT = datetime(2024, 6, 8, 6, 30, tzinfo=UTC)  # the empty feed announces Saturday 2024-06-08


def test_a_source_still_down_stops_at_its_first_failed_refetch(engine: Engine, db_url: str) -> None:
    """A source down for nights has a window queued per night. Each run tried every queued
    window, and each failure cost the whole retry budget: after a long outage a nightly run
    took that budget once per night missed. A run now stops at the first refetch its host
    gives up on; the other windows wait, and the run's own window is still asked for."""
    with feed_server() as (routes, base):
        routes.fail("/rss/cs.CV")
        settings = rss_settings(db_url, base, ["cs.CV"])
        for night in range(3):
            nightly(settings, engine, now=WED + timedelta(days=night), client=client(settings))
        assert len(pending_refetches(engine)) == 3
        routes.requests.clear()
        fourth = nightly(settings, engine, now=WED + timedelta(days=3), client=client(settings))
        asked = len(routes.requests)
        retries = settings.http.max_retries + 1
        assert asked == 2 * retries  # the oldest queued window and the run's own, not all four
        assert fourth.counts["sources"]["arxiv_rss"]["refetched"] == []
        assert len(pending_refetches(engine)) == 4

        # Back up: the next run fetches every queued window, oldest first.
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        fifth = nightly(settings, engine, now=WED + timedelta(days=4), client=client(settings))
    assert len(fifth.counts["sources"]["arxiv_rss"]["refetched"]) == 4
    assert pending_refetches(engine) == []


def test_a_refetch_that_fails_on_its_own_window_does_not_hold_up_the_others(
    engine: Engine, db_url: str
) -> None:
    """A window whose answer cannot be used (here a 404; an arXiv page that stays empty) fails
    alone, at the cost of one request: the queued windows after it are still tried."""
    with feed_server() as (routes, base):
        routes.fail("/rss/cs.CV", status=404)
        settings = rss_settings(db_url, base, ["cs.CV"])
        for night in range(3):
            nightly(settings, engine, now=WED + timedelta(days=night), client=client(settings))
        routes.requests.clear()
        nightly(settings, engine, now=WED + timedelta(days=3), client=client(settings))
    assert len(routes.requests) == 4  # the three queued windows and the run's own


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


def test_a_run_by_hand_soon_after_the_nightly_one_is_no_false_alarm(engine: Engine, db_url: str) -> None:
    """`run nightly` by hand two hours after the scheduled run (README: "a run now") fetched a
    two-hour window: no RSS announcement in it, 0 records, judged against the usual of whole
    days: "0 records, usually 171 on this weekday", a refetch queued, an unhealthy source in
    the digest. Nor is such a run part of the usual: two of them made 0 the median of a
    source's first week, and its next dead night was healthy."""
    seed_history(engine, [CV_ITEMS] * 4, WED)
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        settings = rss_settings(db_url, base, ["cs.CV"])
        scheduled = nightly(settings, engine, now=WED, client=client(settings))
        assert scheduled.health["arxiv_rss"]["healthy"] and scheduled.counts["records"] == CV_ITEMS
        by_hand = [
            nightly(settings, engine, now=WED + timedelta(hours=hours), client=client(settings))
            for hours in (2, 3)
        ]
    for run in by_hand:
        assert run.counts["records"] == 0
        assert run.health["arxiv_rss"]["healthy"] is True, run.health
    assert pending_refetches(engine) == []

    # A week on: the usual is the whole-day runs', not the hand runs' 0, so a dead feed shows.
    with transaction(engine) as session:
        for row in session.scalars(select(RunRow).where(RunRow.started_at < WED)):
            session.delete(row)  # the seeded weeks: only the runs of the Wednesday above remain
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2024-06-09-cs-cv.xml")  # a feed with nothing in the window
        settings = rss_settings(db_url, base, ["cs.CV"])
        dead = nightly(settings, engine, now=WED + timedelta(weeks=1), client=client(settings))
    state = dead.health["arxiv_rss"]
    assert state["usual"] == CV_ITEMS and state["healthy"] is False, state


def test_health_compares_runs_by_the_weekday_of_the_schedules_time_zone(engine: Engine, db_url: str) -> None:
    """A nightly line at 01:30 in Europe/Berlin runs at 00:30 UTC in winter and at 23:30 UTC,
    the day before, in summer. Judged by the UTC weekday, the first Saturday run after the
    clocks went forward was a Friday run: its empty weekend feed was "0 records, usually 160
    on this weekday" (the Fridays'), a false alarm and a refetch. By Berlin's weekday it is
    a Saturday, and Saturdays are usually empty."""
    berlin = ZoneInfo("Europe/Berlin")
    # Four winter weeks (CET, UTC+1) of Friday and Saturday runs at 01:30 Berlin time.
    seed_history(engine, [160, 160, 160, 160], datetime(2026, 4, 3, 0, 30, tzinfo=UTC), berlin)
    seed_history(engine, [0, 0, 0, 0], datetime(2026, 4, 4, 0, 30, tzinfo=UTC), berlin)
    # Saturday 2026-04-04 01:30 CEST (UTC+2, since 2026-03-29) is Friday 23:30 UTC.
    saturday = datetime(2026, 4, 4, 1, 30, tzinfo=berlin).astimezone(UTC)
    assert saturday.weekday() == 4 and saturday.astimezone(berlin).weekday() == 5
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2024-06-09-cs-cv.xml")  # an empty feed
        settings = rss_settings(db_url, base, ["cs.CV"])
        settings.schedule.timezone = "Europe/Berlin"
        result = nightly(settings, engine, now=saturday, client=client(settings))
    state = result.health["arxiv_rss"]
    assert state["weekday"] == 5 and state["usual"] == 0 and state["healthy"] is True, state
    assert pending_refetches(engine) == []
    # A zone that does not exist is refused before anything is fetched or recorded.
    settings.schedule.timezone = "Mars/Olympus_Mons"
    with pytest.raises(UserError, match=r"schedule\.timezone: unknown time zone 'Mars/Olympus_Mons'"):
        nightly(settings, engine, now=saturday + timedelta(days=1), sources=[])
    assert count(engine, RunRow) == 9  # the eight seeded and the Saturday run


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


def test_a_failed_backfill_window_is_named_by_its_days_as_given(engine: Engine, db_url: str) -> None:
    """`--since 2026-08-13 --until 2026-08-19 --step-days 3` failed as `2026-08-13..2026-08-16`,
    `..2026-08-19` and `2026-08-19..2026-08-20`: the day after each window, which was not
    fetched, as if the range had been given one day longer."""
    with feed_server() as (routes, base):
        # A 404 fails each window on its own (a host that is down ends the source's backfill).
        routes.fail("/rss/cs.CV", status=404)
        settings = rss_settings(db_url, base, ["cs.CV"])
        now = datetime(2026, 8, 21, 9, 0, tzinfo=UTC)
        since, until = datetime(2026, 8, 13).date(), datetime(2026, 8, 19).date()
        result = backfill(settings, engine, since, until, now=now, client=client(settings), step_days=3)
    named = re.findall(r"arxiv_rss (\S+): ", result.errors["arxiv_rss"])
    assert named == ["2026-08-13..2026-08-15", "2026-08-16..2026-08-18", "2026-08-19..2026-08-19"]


def test_a_backfill_leaves_a_down_hosts_later_windows_for_the_rerun(engine: Engine, db_url: str) -> None:
    """A backfill asked a host that was down for every window, each at the cost of the whole
    retry budget (with the default five retries a minute or more each: a year of weekly windows,
    52 of them), and its error named every window. Now the first window the host gives up on
    ends that source's backfill in this run; the rerun fetches every window."""
    since, until = datetime(2026, 7, 1).date(), datetime(2026, 7, 28).date()
    with feed_server() as (routes, base):
        routes.fail("/rss/cs.CV")
        settings = rss_settings(db_url, base, ["cs.CV"])
        down = backfill(settings, engine, since, until, now=WED, client=client(settings))
        assert len(routes.requests) == settings.http.max_retries + 1  # one window's budget, not four
        assert down.outcome == RunOutcome.FAILED and down.exit_code == 1  # its only source
        first, left = down.errors["arxiv_rss"].split("; ", 1)
        assert first.startswith("arxiv_rss 2026-07-01..2026-07-07: ") and "503" in first
        assert left == "arxiv_rss: 3 later windows not asked for; rerun the same backfill"

        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        back = backfill(settings, engine, since, until, now=WED, client=client(settings))
        assert back.outcome == RunOutcome.OK and back.counts["windows_skipped"] == 0
        done = backfill(settings, engine, since, until, now=WED, client=client(settings))
    assert done.counts["windows_skipped"] == 4


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
        # It said "crashed: KeyboardInterrupt: ", as `ingest-jsonl` did not.
        assert row.outcome == "failed" and row.errors["run"] == "interrupted (Ctrl-C)"
        assert count(engine, SightingRow) == CV_ITEMS  # the page was committed before the interrupt

        later = WED + timedelta(hours=1)
        result = nightly(settings, engine, now=later, client=client(settings))
    assert result.window is not None and row.window_start is not None
    # Resumed as a killed run's window is, and its papers are scored (`recovered_runs`).
    assert (result.window.start, result.window.end) == (aware(row.window_start), later)
    assert result.counts["recovered_runs"] == [row.id]
    assert result.outcome == RunOutcome.OK
    assert count(engine, SightingRow) == CV_ITEMS


THU = WED + timedelta(days=1)  # 2026-08-21-cs-cv.xml announces Thursday 2026-08-20
VPT_LIST = Path(__file__).resolve().parents[1] / "fixtures" / "lists"
VPT_README = VPT_LIST / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"
SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "classifiers" / "awesome-vpt"


def catalogue_settings(db_url: str, base: str, data_dir: Path) -> Settings:
    """cs.CV and one catalogue, `vpt`, without a preset: its model is only its own trained one
    (`data_dir/classifiers/vpt`), so it is missing until a test puts it there."""
    rules = KeywordRules(include=["prompt"], exclude=[])  # queued whatever the model says
    return rss_settings(
        db_url, base, ["cs.CV"], data_dir=data_dir, catalogues=[CatalogueConfig(name="vpt", rules=rules)]
    )


def vpt_candidates(engine: Engine) -> dict[int, str]:
    with transaction(engine) as session:
        rows = session.execute(select(CandidateRow.paper_id, CandidateRow.status)).all()
    assert len(rows) == len({paper_id for paper_id, _status in rows})  # nothing proposed twice
    return {paper_id: status for paper_id, status in rows}


def night_papers(engine: Engine, run_id: int) -> set[int]:
    with transaction(engine) as session:
        return set(session.scalars(select(SightingRow.paper_id).where(SightingRow.run_id == run_id)))


def test_a_catalogue_that_could_not_score_catches_up_in_a_later_run(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wednesday the model is missing; Thursday scoring dies half-way (nothing is written);
    Friday, with the model back, the papers of all three nights are scored, once each."""
    import_catalogue(engine, "vpt", VPT_README.read_text(encoding="utf-8"), preset=None)
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        settings = catalogue_settings(db_url, base, tmp_path)
        wednesday = nightly(settings, engine, now=WED, client=client(settings))
        assert wednesday.outcome == RunOutcome.PARTIAL and wednesday.exit_code == 1
        assert "no model for catalogue 'vpt'" in wednesday.errors["catalogue:vpt"]
        assert vpt_candidates(engine) == {}
        missed = night_papers(engine, wednesday.run_id)
        assert len(missed) > 100

        # A reviewer rejected one of Wednesday's papers that the include rule queues (it has
        # "prompt" in its title), say after a `classify enqueue`.
        with transaction(engine) as session:
            catalogue = session.scalars(select(CatalogueRow).where(CatalogueRow.name == "vpt")).one()
            titles = session.execute(select(PaperRow.id, PaperRow.title).where(PaperRow.id.in_(missed)))
            prompt_papers = sorted(pid for pid, title in titles if re.search(r"\bprompt\b", title, re.I))
            rejected = prompt_papers[0]
            session.add(CandidateRow(paper_id=rejected, catalogue_id=catalogue.id, status="rejected"))

        shutil.copytree(SHIPPED_MODEL, tmp_path / "classifiers" / "vpt")

        def die(*_args: object, **_kwargs: object) -> object:
            raise RuntimeError("scoring died half-way")

        routes.feed("/rss/cs.CV", "2026-08-21-cs-cv.xml")
        with monkeypatch.context() as patch:
            patch.setattr(CatalogueModel, "score_many", die)
            thursday = nightly(settings, engine, now=THU, client=client(settings))
        assert thursday.errors["catalogue:vpt"] == "scoring died half-way"
        assert vpt_candidates(engine) == {rejected: "rejected"}
        missed |= night_papers(engine, thursday.run_id)

        friday = nightly(settings, engine, now=THU + timedelta(days=1), client=client(settings))
        assert friday.outcome == RunOutcome.OK and friday.errors == {}
        assert friday.counts["new_papers"] == 0  # nothing new: all of it is catching up
        candidates = vpt_candidates(engine)
        assert candidates[rejected] == "rejected"  # a rejection is final
        assert set(candidates) <= missed
        wednesdays = night_papers(engine, wednesday.run_id)
        assert len(set(candidates) & wednesdays) > 10  # not only Thursday's papers are queued
        assert friday.counts["catalogues"]["vpt"]["scored"] == len(missed) - 1  # all but the rejected one

        # Caught up: the next run scores nothing again, and `classify enqueue` finds nothing left.
        saturday = nightly(settings, engine, now=THU + timedelta(days=2), client=client(settings))
        assert saturday.counts["catalogues"] == {} and vpt_candidates(engine) == candidates
    assert score_and_enqueue(engine, "vpt", None, settings=settings).queued == 0


def test_papers_a_manual_fetch_stored_are_scored_by_the_next_run(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """`vpt-tracker fetch arxiv_rss` before the nightly run (a maintainer trying a source)
    stored the announcement; the run then found it stored, had no new papers, and scored
    nothing: that day's papers never reached the queue. A fetch leaves its new papers owed
    to every configured catalogue (`scoring_backlog`), which the next run scores."""
    from click.testing import CliRunner

    from vpt_tracker.cli import main

    import_catalogue(engine, "vpt", VPT_README.read_text(encoding="utf-8"), preset=None)
    shutil.copytree(SHIPPED_MODEL, tmp_path / "classifiers" / "vpt")
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        config = tmp_path / "vpt-tracker.toml"
        config.write_text(
            f'data_dir = "{tmp_path}"\n'
            "[http]\nmax_retries = 0\ndefault_min_interval = 0\nmin_interval = {}\nhost_groups = {}\n"
            f'[sources.arxiv_rss]\nbase_url = "{base}/rss"\ncategories = ["cs.CV"]\n'
            '[[catalogues]]\nname = "vpt"\n[catalogues.rules]\ninclude = ["prompt"]\n'
        )
        fetched = CliRunner().invoke(
            main,
            [
                "--config",
                str(config),
                "--database",
                db_url,
                "fetch",
                "arxiv_rss",
                "--since",
                "2026-08-18",
                "--until",
                "2026-08-19",
            ],
        )
        assert fetched.exit_code == 0, fetched.output
        assert count(engine, PaperRow) > 100 and vpt_candidates(engine) == {}
        settings = catalogue_settings(db_url, base, tmp_path)
        result = nightly(settings, engine, now=WED, client=client(settings))
    assert result.outcome == RunOutcome.OK, result.errors
    assert result.counts["new_papers"] == 0  # the fetch stored them
    assert len(vpt_candidates(engine)) > 10
    assert result.counts["catalogues"]["vpt"]["caught_up"] == count(engine, PaperRow)
    assert owed(engine) == 0


def test_classify_enqueue_pays_what_a_catalogue_owes(engine: Engine, db_url: str, tmp_path: Path) -> None:
    """`classify enqueue NAME` scores every paper the catalogue does not know, so the night it
    missed is scored then; it must forget the debt too, or the next nightly run scores those
    papers again and the digest reports them as waiting."""
    import_catalogue(engine, "vpt", VPT_README.read_text(encoding="utf-8"), preset=None)
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        settings = catalogue_settings(db_url, base, tmp_path)
        wednesday = nightly(settings, engine, now=WED, client=client(settings))
        assert "catalogue:vpt" in wednesday.errors and owed(engine) > 100
        shutil.copytree(SHIPPED_MODEL, tmp_path / "classifiers" / "vpt")
        stats = score_and_enqueue(engine, "vpt", None, settings=settings)  # as `classify enqueue vpt`
        assert stats.scored == len(night_papers(engine, wednesday.run_id))
        assert owed(engine) == 0
        routes.feed("/rss/cs.CV", "2026-08-21-cs-cv.xml")
        thursday = nightly(settings, engine, now=THU, client=client(settings))
    assert thursday.counts["catalogues"]["vpt"]["caught_up"] == 0


def test_papers_of_a_crashed_run_are_scored_even_when_the_run_recovering_it_crashes_too(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """Run 1 stores cs.CV and crashes; run 2 takes it over, stores cs.CL and crashes before
    scoring; run 3 must score both. It scored only cs.CL: run 2 had already cleared run 1's
    "unscored" mark when it started, so run 1's papers were never scored for any catalogue."""

    def interrupt(source: str, records: int) -> None:
        raise KeyboardInterrupt

    import_catalogue(engine, "vpt", VPT_README.read_text(encoding="utf-8"), preset="awesome-vpt")
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        routes.feed("/rss/cs.CL", "2026-08-20-cs-cl.xml")
        rules = KeywordRules(include=["prompt"], exclude=[])
        catalogue = CatalogueConfig(name="vpt", preset="awesome-vpt", rules=rules)
        settings = rss_settings(db_url, base, ["cs.CV", "cs.CL"], data_dir=tmp_path, catalogues=[catalogue])
        for hours in (0, 1):
            with pytest.raises(KeyboardInterrupt):
                nightly(
                    settings,
                    engine,
                    now=WED + timedelta(hours=hours),
                    client=client(settings),
                    progress=interrupt,
                )
        first, second = sorted(recent_runs(engine), key=lambda row: row.id)
        assert count(engine, SightingRow) == BOTH and vpt_candidates(engine) == {}

        third = nightly(settings, engine, now=WED + timedelta(hours=2), client=client(settings))
        assert third.outcome == RunOutcome.OK and third.counts["recovered_runs"] == [first.id, second.id]
        candidates = vpt_candidates(engine)
        assert candidates and set(candidates) & night_papers(engine, first.id)  # cs.CV's are queued too
        # Scored once: the next run recovers nothing.
        fourth = nightly(settings, engine, now=WED + timedelta(hours=3), client=client(settings))
        assert fourth.counts["recovered_runs"] == [] and vpt_candidates(engine) == candidates
    assert score_and_enqueue(engine, "vpt", None, settings=settings).queued == 0  # nothing was left out


def test_a_dead_cvf_paper_page_is_reported_in_the_health_and_the_other_papers_are_stored(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    # The recorded CVPR 2022 listing and paper pages, one page removed: it answers 404.
    root = tmp_path / "replay"
    shutil.copytree(default_root() / "cvf", root / "cvf")
    dead = root / "cvf" / "content" / "CVPR2022" / "html" / COCOOP_PAGE
    dead.unlink()
    with ReplayServer(root) as server:
        settings = rss_settings(db_url, server.base_url, [])
        settings.sources.arxiv_rss.enabled = False
        settings.sources.cvf = CvfConfig(
            base_url=server.base_url, conferences=[CvfConference(name="CVPR", year=2022)]
        )
        first = nightly(settings, engine, now=WED, client=client(settings))
        server.requests.clear()
        second = nightly(settings, engine, now=WED + timedelta(days=1), client=client(settings))
        asked = [r.path for r in server.requests]
    # Before, the 404 failed the source on every run and the last 5 papers were never stored.
    assert first.outcome == RunOutcome.OK and first.errors == {}
    assert first.counts["sources"]["cvf"]["records"] == 30 and count(engine, SightingRow) == 30
    page_url = f"https://openaccess.thecvf.com/content/CVPR2022/html/{COCOOP_PAGE}"
    problem = f"the paper page {page_url} answered HTTP 404"
    health = first.health["cvf"]
    assert health["healthy"] is True and [p.split(";")[0] for p in health["problems"]] == [problem]
    [latest, _] = recent_runs(engine)[:2]
    assert latest.id == second.run_id
    assert second.health["cvf"]["problems"] == [] and asked == ["/CVPR2022"]  # a 404 is not asked again
    assert pending_refetches(engine) == []  # nor is the window queued for a refetch
    with transaction(engine) as session:
        stored = session.scalars(select(RunRow.health).where(RunRow.id == first.run_id)).one()
    assert stored["cvf"]["problems"] == health["problems"]


def test_a_quiet_cvf_night_after_a_conference_was_read_is_healthy(engine: Engine, db_url: str) -> None:
    """CVF reads a listing again only when it changed, so a week after the night that read
    CVPR 2022 (30 records) the same weekday stores nothing. The health check took that for
    "0 records, usually 30 on this weekday": CVF was unhealthy, a refetch queued and the
    digest alarmed, every such night until four quiet weeks made 0 the usual."""
    with ReplayServer(default_root()) as server:
        settings = rss_settings(db_url, server.base_url, [])
        settings.sources.arxiv_rss.enabled = False
        settings.sources.cvf = CvfConfig(
            base_url=server.base_url, conferences=[CvfConference(name="CVPR", year=2022)]
        )
        first = nightly(settings, engine, now=WED, client=client(settings))
        week_later = nightly(settings, engine, now=WED + timedelta(weeks=1), client=client(settings))
    assert first.counts["sources"]["cvf"]["records"] == 30
    assert week_later.counts["sources"]["cvf"]["records"] == 0
    assert week_later.health["cvf"]["usual"] == 30  # the history is there; volume is not judged
    assert week_later.health["cvf"]["healthy"] is True and week_later.unhealthy() == []
    assert pending_refetches(engine) == []


def test_a_gap_longer_than_two_weeks_names_the_backfill_that_fetches_it(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """After a month off, the nightly run fetches the last 14 days only; the warning said
    "fetching only the last 14 days, 0:00:00" and nothing of the days it left out, which no
    later nightly run fetches. It now names them, as the `run backfill` that fetches them."""
    from vpt_tracker.pipeline import nightly_window

    with transaction(engine) as session:
        session.add(
            RunRow(
                kind="nightly",
                outcome="ok",
                window_start=WED - timedelta(days=31),
                window_end=WED - timedelta(days=30),
            )
        )
    with caplog.at_level("WARNING", logger="vpt_tracker.pipeline"):
        window = nightly_window(engine, WED)
    assert window.start == WED - timedelta(days=14)
    [message] = [r.getMessage() for r in caplog.records if r.name == "vpt_tracker.pipeline"]
    assert message == (
        "the last nightly window ended 2026-07-20 06:30 UTC, more than 14 days ago: this run fetches "
        "from 2026-08-05 06:30 UTC; fetch the days before with "
        "`vpt-tracker run backfill --since 2026-07-20 --until 2026-08-05`"
    )


def _api_settings(db_url: str, base_url: str) -> Settings:
    """Only the arXiv API source on the replay server, pages of 10, no waiting, no retries."""
    return Settings(
        database_url=db_url,
        http=HttpConfig(max_retries=0, default_min_interval=0, min_interval={}, host_groups={}, timeout=5),
        sources=SourcesConfig(
            arxiv_api=ArxivApiConfig(base_url=base_url, categories=["cs.SE"], keywords=[], page_size=10),
            arxiv_rss=ArxivRssConfig(enabled=False),
            openreview=OpenReviewConfig(enabled=False),
            cvf=CvfConfig(enabled=False),
        ),
    )


def test_the_refetch_of_a_failed_arxiv_window_resumes_where_the_failed_run_stopped(
    engine: Engine, db_url: str
) -> None:
    """The nightly run's arXiv API fetch fails at its second page (start=10, HTTP 503). The
    next run refetches that window: it used to ask for it again from start=0, because the
    refetch reads cursors of its own (`refetch:<id>:query`) and the failed run's position
    was left under the nightly key, where this run's own window then overwrote it."""
    with ReplayServer(SOURCE_FIXTURES) as replay:
        replay.inject(Fault("status", match="start=10&", status=503))
        settings = _api_settings(db_url, replay.urls()["arxiv_api"])
        first = nightly(settings, engine, now=WED, client=client(settings))
        assert "503" in first.errors["arxiv_api"]
        assert first.counts["sources"]["arxiv_api"]["records"] == 10
        [queued] = pending_refetches(engine)
        failed_query = next(r.query["search_query"] for r in replay.requests)
        replay.requests.clear()

        second = nightly(settings, engine, now=WED + timedelta(days=1), client=client(settings))
        refetch = [r.query["start"] for r in replay.requests if r.query["search_query"] == failed_query]
    assert second.outcome == RunOutcome.OK
    assert second.counts["sources"]["arxiv_api"]["refetched"] == [
        f"{aware(queued.window_start).isoformat()}/{aware(queued.window_end).isoformat()}"
    ]
    assert refetch == ["10", "20"]  # not "0", "10", "20"
    with transaction(engine) as session:
        ids = session.scalars(select(SightingRow.source_id).where(SightingRow.source == "arxiv_api")).all()
    assert len(ids) == len(set(ids)) == 30  # the whole window, nothing skipped
