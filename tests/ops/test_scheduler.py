"""The `serve` scheduler: triggers from the config, job options, job log lines, SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy import Engine

from ops.feeds import feed_server, rss_settings
from ops.pg_lock import end_lock_session, lock_holders
from ops.seed import seed_week
from ops.smtp import smtp_server
from vpt_tracker import logs
from vpt_tracker.config import ScheduleConfig, Settings, SmtpConfig
from vpt_tracker.errors import UserError
from vpt_tracker.locks import _PostgresHeldLock, exclusive
from vpt_tracker.logs import JsonFormatter
from vpt_tracker.pipeline import recent_runs
from vpt_tracker.scheduler import build_scheduler, digest_job, nightly_job, run_job
from vpt_tracker.store import make_engine

WEEK = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def settings_with(**schedule: object) -> Settings:
    return Settings(database_url="sqlite://", schedule=ScheduleConfig(**schedule))  # type: ignore[arg-type]


def test_jobs_use_the_configured_cron_lines_in_the_configured_time_zone(engine: Engine) -> None:
    settings = settings_with(
        timezone="Europe/Berlin", nightly="30 6 * * *", digest="0 8 * * mon", misfire_grace_seconds=900
    )
    scheduler = build_scheduler(settings, engine)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"nightly", "digest"}
    for job in jobs.values():
        assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, 900)
    # 06:30 in Berlin (CEST in summer, UTC+2) is 04:30 UTC.
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    fire = jobs["nightly"].trigger.get_next_fire_time(None, summer)
    assert fire.astimezone(UTC) == datetime(2026, 7, 2, 4, 30, tzinfo=UTC)
    # Mondays at 08:00 Berlin; 2026-07-06 is a Monday.
    fire = jobs["digest"].trigger.get_next_fire_time(None, summer)
    assert fire.astimezone(UTC) == datetime(2026, 7, 6, 6, 0, tzinfo=UTC)


def fire_times(trigger: BaseTrigger, start: datetime, hours: int) -> list[datetime]:
    """The times the scheduler fires `trigger` at, in UTC: as it does, the next one is asked
    for with the previous one, at the moment the previous one ran."""
    fires: list[datetime] = []
    previous, now = None, start
    while (fire := trigger.get_next_fire_time(previous, now)) < start + timedelta(hours=hours):
        fires.append(fire.astimezone(UTC))
        previous, now = fire, fire.astimezone(UTC) + timedelta(milliseconds=5)
    return fires


BERLIN_BACK = datetime(2026, 10, 24, 12, tzinfo=UTC)  # 2026-10-25 03:00 CEST is 02:00 CET again


@pytest.mark.parametrize(
    ("zone", "line", "night", "expected"),
    [
        ("Europe/Berlin", "30 2 * * *", BERLIN_BACK, ["10-25 00:30", "10-26 01:30"]),
        (
            "Europe/Berlin",
            "0,30 2 * * *",
            BERLIN_BACK,
            ["10-25 00:00", "10-25 00:30", "10-26 01:00", "10-26 01:30"],
        ),
        # New York: 2026-11-01 02:00 EDT is 01:00 EST again.
        (
            "America/New_York",
            "30 1 * * *",
            datetime(2026, 10, 31, 12, tzinfo=UTC),
            ["11-01 05:30", "11-02 06:30"],
        ),
        # Clocks going forward: 02:30 does not exist on 2026-03-29 in Berlin; the run is at 03:30 CEST.
        (
            "Europe/Berlin",
            "30 2 * * *",
            datetime(2026, 3, 28, 12, tzinfo=UTC),
            ["03-29 01:30", "03-30 00:30"],
        ),
        # A wildcard minute or hour runs by the clock, in the repeated hour too (as in cron).
        (
            "Europe/Berlin",
            "*/30 2 * * *",
            BERLIN_BACK,
            ["10-25 00:00", "10-25 00:30", "10-25 01:00", "10-25 01:30", "10-26 01:00", "10-26 01:30"],
        ),
    ],
)
def test_a_fixed_time_job_runs_once_on_the_night_the_clocks_go_back(
    engine: Engine, zone: str, line: str, night: datetime, expected: list[str]
) -> None:
    """As in cron. The nightly at 02:30 ran at 02:30 summer time and again at 02:30 winter
    time, over a one-hour window that the health check took for a source gone quiet."""
    scheduler = build_scheduler(settings_with(timezone=zone, nightly=line), engine)
    fires = fire_times(scheduler.get_job("nightly").trigger, night, 48)
    assert [fire.strftime("%m-%d %H:%M") for fire in fires] == expected


@pytest.mark.parametrize(
    ("line", "start", "days", "expected"),
    [
        # Both day fields restricted: the 1st of every month and every Monday, as in cron.
        (
            "0 8 1 * mon",
            datetime(2026, 11, 25, 12, tzinfo=UTC),
            40,
            ["11-30", "12-01", "12-07", "12-14", "12-21", "12-28", "01-01", "01-04"],
        ),
        # 2027-02-01 is a Monday and the 1st: one run, not two.
        ("0 8 1 * mon", datetime(2027, 1, 30, 12, tzinfo=UTC), 10, ["02-01", "02-08"]),
        # The month still has to match: Mondays in January, and January 1st (a Friday).
        ("0 8 1 1 mon", datetime(2026, 12, 20, 12, tzinfo=UTC), 16, ["01-01", "01-04"]),
        # Crontab numbers: 5 is Friday (2026-11-27 and 12-04), and December 1st to 3rd.
        (
            "0 8 1-3 * 5",
            datetime(2026, 11, 25, 12, tzinfo=UTC),
            14,
            ["11-27", "12-01", "12-02", "12-03", "12-04"],
        ),
        # A field starting with `*` does not restrict (cron reads only its first character):
        # `*/2` and `mon` are odd days that are Mondays.
        ("0 8 */2 * mon", datetime(2026, 11, 25, 12, tzinfo=UTC), 35, ["12-07", "12-21"]),
        ("0 8 1 * *", datetime(2026, 11, 25, 12, tzinfo=UTC), 40, ["12-01", "01-01"]),
        ("0 8 * * mon", datetime(2026, 11, 25, 12, tzinfo=UTC), 14, ["11-30", "12-07"]),
    ],
)
def test_a_day_of_month_and_a_day_of_week_run_on_either_day_as_in_cron(
    engine: Engine, line: str, start: datetime, days: int, expected: list[str]
) -> None:
    """cron(8): when both day fields are restricted, a day that matches either runs the line.
    APScheduler wanted both, so `0 8 1 * mon` ran only on Mondays that are the 1st (a few a year)."""
    scheduler = build_scheduler(settings_with(timezone="Europe/Berlin", digest=line), engine)
    fires = fire_times(scheduler.get_job("digest").trigger, start, days * 24)
    assert [fire.strftime("%m-%d") for fire in fires] == expected
    assert {fire.strftime("%H:%M") for fire in fires} == {"07:00"}  # 08:00 CET


def test_either_day_keeps_a_fixed_time_job_to_one_run_when_the_clocks_go_back(engine: Engine) -> None:
    """2026-10-25 is a Sunday and the 25th, and the night Berlin's clocks go back: one run at
    02:30 summer time, not one per day field, nor another at 02:30 winter time."""
    scheduler = build_scheduler(settings_with(timezone="Europe/Berlin", nightly="30 2 25 * sun"), engine)
    fires = fire_times(scheduler.get_job("nightly").trigger, BERLIN_BACK, 48)
    assert [fire.strftime("%m-%d %H:%M") for fire in fires] == ["10-25 00:30"]


@pytest.mark.parametrize(
    ("day_of_week", "days"),
    [
        ("1", ["Mon"]),  # crontab: 0 and 7 are Sunday, 1 is Monday (APScheduler 3 counts from Monday)
        ("0", ["Sun"]),
        ("7", ["Sun"]),
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("5-7", ["Fri", "Sat", "Sun"]),
        ("0,6", ["Sat", "Sun"]),
        ("*/2", ["Tue", "Thu", "Sat", "Sun"]),
        ("1-5/2", ["Mon", "Wed", "Fri"]),
        ("sun-sat/3", ["Wed", "Sat", "Sun"]),
        ("mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("SAT,Sun", ["Sat", "Sun"]),
        ("*", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
    ],
)
def test_day_of_week_numbers_are_crontab_numbers(engine: Engine, day_of_week: str, days: list[str]) -> None:
    """`0 8 * * 1` is Mondays, as in crontab(5); APScheduler's own numbers would make it Tuesdays."""
    scheduler = build_scheduler(settings_with(timezone="UTC", digest=f"0 8 * * {day_of_week}"), engine)
    trigger = scheduler.get_job("digest").trigger
    fires, moment = [], datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a Sunday noon: the next 7 days
    while (fire := trigger.get_next_fire_time(None, moment)) < datetime(2026, 11, 29, 12, 0, tzinfo=UTC):
        fires.append(fire)
        moment = fire + timedelta(minutes=1)
    assert sorted({fire.strftime("%a") for fire in fires}, key=WEEK.index) == days
    assert all(fire.strftime("%H:%M") == "08:00" for fire in fires)


@pytest.mark.parametrize("day_of_week", ["8", "5-1", "mon-", "*/0", "funday", "1/x"])
def test_a_bad_day_of_week_names_the_key(engine: Engine, day_of_week: str) -> None:
    with pytest.raises(UserError, match=r"schedule\.nightly: '30 6 \* \* .*' is not a crontab expression"):
        build_scheduler(settings_with(nightly=f"30 6 * * {day_of_week}"), engine)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"nightly": "30 25 * * *"}, "schedule.nightly: '30 25 * * *' is not a crontab expression"),
        ({"digest": "every monday"}, "schedule.digest"),
        ({"timezone": "Mars/Olympus"}, "schedule.timezone: unknown time zone 'Mars/Olympus'"),
        ({"misfire_grace_seconds": 0}, "schedule.misfire_grace_seconds"),
        # APScheduler turns it into a timedelta at each run, which overflowed: every job
        # failed in the scheduler, never ran, and logged no job line.
        ({"misfire_grace_seconds": 10**14}, "schedule.misfire_grace_seconds must be between 1 and 31536000"),
    ],
)
def test_bad_schedule_names_the_key(engine: Engine, schedule: dict[str, object], message: str) -> None:
    with pytest.raises(UserError) as caught:
        build_scheduler(settings_with(**schedule), engine)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("key", "line"),
    [("nightly", "30 6 30 2 *"), ("nightly", "30 6 31 4,6,9,11 *"), ("digest", "0 8 31 2 *")],
)
def test_a_line_that_never_runs_is_refused(engine: Engine, key: str, line: str) -> None:
    """A day no month has (February 30th, April 31st): APScheduler gives no next run and
    keeps the job paused, so the service started and that job never ran, without a word."""
    with pytest.raises(UserError) as caught:
        build_scheduler(settings_with(**{key: line}), engine)
    assert str(caught.value) == f"schedule.{key}: {line!r} never runs (no month has that day)"


def test_a_line_that_runs_only_in_leap_years_is_kept(engine: Engine) -> None:
    scheduler = build_scheduler(settings_with(nightly="30 6 29 2 *"), engine)
    fire = scheduler.get_job("nightly").trigger.get_next_fire_time(None, datetime(2026, 12, 7, tzinfo=UTC))
    assert fire == datetime(2028, 2, 29, 6, 30, tzinfo=UTC)


def test_a_job_due_after_the_host_slept_runs_when_it_wakes(engine: Engine) -> None:
    """The scheduler waits on a monotonic clock, which stands still while the host is
    suspended: it woke as late as the host had slept, so a nightly missed by minutes was
    missed by hours, past the grace time, and skipped. It now looks at the wall clock at
    least every `check_every` seconds. A job made due without waking the scheduler (as
    the wall clock jumping past its time does) has to run within that."""
    scheduler = build_scheduler(settings_with(misfire_grace_seconds=3600), engine)
    scheduler.check_every = 0.2
    ran = threading.Event()
    scheduler.add_job(ran.set, "cron", hour=3, id="probe", misfire_grace_time=3600)
    thread = threading.Thread(target=scheduler.start, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not scheduler.running and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the scheduler is asleep until the next job's time, hours away
        job = scheduler.get_job("probe")
        job.next_run_time = datetime.now(UTC) - timedelta(minutes=5)  # slept past it
        scheduler._jobstores["default"].update_job(job)  # no wakeup: only the clock moved
        assert ran.wait(5), "the job due for 5 minutes did not run"
    finally:
        scheduler.shutdown(wait=False)
        thread.join(10)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_no_job_starts_while_the_lock_cannot_be_checked(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Between the end of the lock's session and the server's return the lock is nobody's;
    a job started then could run beside another service's. No job starts until the lock is
    held again, and the wait is logged once."""
    caplog.set_level(logging.INFO, logger="vpt_tracker.scheduler")
    with socket.socket() as probe:  # a port nothing listens on: the server is down
        probe.bind(("127.0.0.1", 0))
        down = make_engine(engine.url.set(port=probe.getsockname()[1]).render_as_string(hide_password=False))
    scheduler = build_scheduler(settings_with(misfire_grace_seconds=3600), engine)
    scheduler.check_every = 0.1
    ran = threading.Event()
    scheduler.add_job(ran.set, "date", run_date=datetime.now(UTC), id="probe", misfire_grace_time=3600)
    with exclusive(engine, "serve") as held:
        scheduler.lock = held
        assert isinstance(held, _PostgresHeldLock)
        end_lock_session(engine, "serve")
        held.engine = down
        thread = threading.Thread(target=scheduler.start, daemon=True)
        thread.start()
        try:
            assert not ran.wait(1.5), "a job started without the lock"
            held.engine = engine  # the server is back
            assert ran.wait(5), "the job did not run once the lock was held again"
        finally:
            scheduler.shutdown(wait=False)
            thread.join(10)
            down.dispose()
    assert [line["event"] for line in job_lines(caplog)] == ["lock_unreachable", "lock_taken_again"]


def job_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "vpt_tracker.scheduler"]


def test_a_job_run_logs_one_json_line(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    seed_week(engine)
    caplog.set_level(logging.INFO, logger="vpt_tracker.scheduler")
    with smtp_server() as (inbox, port):
        smtp = SmtpConfig(host="127.0.0.1", port=port, security="none", recipients=["ana@example.org"])
        settings = Settings(database_url="sqlite://", smtp=smtp)
        ticks = iter([100.0, 102.5])
        run_job("digest", lambda: digest_job(settings, engine), clock=lambda: next(ticks))
    [line] = job_lines(caplog)
    assert line["event"] == "job" and line["job"] == "digest" and line["outcome"] == "ok"
    assert line["duration_s"] == 2.5
    assert isinstance(line["sent"], list) and len(line["sent"]) == 1 == len(inbox.messages)


def test_a_nightly_job_while_another_run_holds_the_lock_is_skipped(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vpt_tracker.scheduler")
    settings = Settings(database_url="sqlite://")
    with exclusive(engine, "pipeline"):
        run_job("nightly", lambda: nightly_job(settings, engine))
    [line] = job_lines(caplog)
    assert line["outcome"] == "skipped" and "in progress" in str(line["error"])


@pytest.fixture
def root_logging() -> Iterator[None]:
    """`logs.configure` replaces the root logger's handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_serve_logs_one_line_per_job_with_its_warnings_in_it(
    engine: Engine, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    """`serve` logs at INFO level: the nightly run's own lines ("nightly run 1: window ...", the
    failed source's warning) came out beside the job's line. The README promises one line per
    job; what the job warned of goes into that line, so an error is not lost."""
    logs.configure(1, secrets=["s3cret-token"], json_lines=True, one_line_per_job=True)  # as `serve`
    with feed_server() as (routes, base):
        routes.fail("/rss/cs.CV")
        settings = rss_settings(db_url, base, ["cs.CV"], data_dir=tmp_path)
        logging.getLogger("vpt_tracker.http").warning("token s3cret-token leaked")  # outside a job
        run_job("nightly", lambda: nightly_job(settings, engine))
        run_job("nightly", lambda: nightly_job(settings, engine))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line.get("event") for line in lines] == [None, "job", "job"]  # one line per job
    assert lines[0]["message"] == "token ********** leaked"
    first = lines[1]
    assert (
        first["job"] == "nightly" and first["outcome"] == "failed" and "503" in first["errors"]["arxiv_rss"]
    )
    [warning] = first["warnings"]
    assert warning["level"] == "warning" and warning["logger"] == "vpt_tracker.pipeline"
    assert warning["message"].startswith("arxiv_rss failed: ") and "503" in warning["message"]
    assert "warnings" in lines[2]  # each job collects its own


def test_a_secret_in_a_jobs_error_fields_is_masked(
    capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    """The job line's `error` and `errors` fields are the text of exceptions, which can quote
    a secret (a URL with its token); they are masked as the message is."""
    logs.configure(1, secrets=["s3cret-token"], json_lines=True, one_line_per_job=True)  # as `serve`

    def broken() -> dict[str, object]:
        raise ConnectionError("GET https://api.example.org/?token=s3cret-token failed")

    run_job("nightly", broken)
    run_job("nightly", lambda: {"errors": {"arxiv_rss": "401 for s3cret-token"}, "outcome": "failed"})
    err = capsys.readouterr().err
    assert "s3cret-token" not in err
    first, second = (json.loads(line) for line in err.splitlines())
    assert first["error"] == "ConnectionError: GET https://api.example.org/?token=********** failed"
    assert second["errors"] == {"arxiv_rss": "401 for **********"}


def test_a_failing_job_is_logged_and_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vpt_tracker.scheduler")

    def broken() -> dict[str, object]:
        raise ConnectionError("database went away")

    run_job("nightly", broken)
    [line] = job_lines(caplog)
    assert line["outcome"] == "failed" and line["error"] == "ConnectionError: database went away"
    assert line["level"] == "error"


def first_or_monday_at_8(after: datetime) -> datetime:
    """The first 08:00 UTC after `after` on the 1st of a month or a Monday: `0 8 1 * mon` by hand."""
    day = after.replace(hour=8, minute=0, second=0, microsecond=0)
    while day <= after or not (day.day == 1 or day.weekday() == 0):
        day += timedelta(days=1)
    return day


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "vpt-tracker.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path / "serve.db"}"\n'
        '[schedule]\ntimezone = "UTC"\nnightly = "30 6 * * *"\ndigest = "0 8 1 * mon"\n'
    )
    before = first_or_monday_at_8(datetime.now(UTC))
    env = {**os.environ, "VPT_CONFIG": str(config)}
    child = subprocess.Popen(
        [sys.executable, "-c", "from vpt_tracker.cli import main; main()", "serve"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, child.kill)  # a hung service fails the test, never the suite
    watchdog.start()
    try:
        assert child.stderr is not None
        lines = (json.loads(line) for line in child.stderr if line.startswith("{"))
        started = next(line for line in lines if line.get("event") == "start")
        assert started["event"] == "start" and started["timezone"] == "UTC"
        assert set(started["next_runs"]) == {"nightly", "digest"}
        assert started["next_runs"]["nightly"].endswith("06:30:00+00:00")
        # The 1st of a month or a Monday, whichever comes first (the start may pass one).
        either = {before.isoformat(), first_or_monday_at_8(before).isoformat()}
        assert started["next_runs"]["digest"] in either
        child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=30)
        rest = [json.loads(line) for line in child.stderr.read().splitlines() if line.startswith("{")]
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
    assert code == 0
    assert [line["event"] for line in rest] == ["stop", "stopped"]
    assert rest[0]["signal"] == "SIGTERM"


def start_serve(config: Path, db_url: str, check_every: float = 60.0) -> subprocess.Popen[str]:
    """`vpt-tracker serve` in a process of its own; `check_every` is `Scheduler.check_every`."""
    script = (
        f"from vpt_tracker.scheduler import Scheduler; Scheduler.check_every = {check_every!r}\n"
        "from vpt_tracker.cli import main; main()"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, "--database", db_url, "serve"],
        env={**os.environ, "VPT_CONFIG": str(config), "VPT_DATA_DIR": str(config.parent / "data")},
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_serve_on_the_same_database_exits_75(db_url: str, tmp_path: Path) -> None:
    """Two services on one store (a redeploy whose old container still runs, systemd and
    compose both) ran every job twice: one nightly run skipped each night at best, and at
    worst a second run over the seconds after the first, which the health check takes for
    sources gone quiet. The second `serve` now refuses to start, as a second run does."""
    config = tmp_path / "vpt-tracker.toml"
    config.write_text('[schedule]\ntimezone = "UTC"\n')
    first = start_serve(config, db_url)
    watchdog = threading.Timer(120, first.kill)
    watchdog.start()
    try:
        assert first.stderr is not None
        started = next(line for line in first.stderr if '"event": "start"' in line)
        assert json.loads(started)["event"] == "start"
        second = start_serve(config, db_url)
        try:
            _, err = second.communicate(timeout=30)
        finally:
            if second.poll() is None:
                second.kill()
        assert second.returncode == 75, err
        assert err.startswith("Error: another vpt-tracker serve is running") and err.count("\n") == 1
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    finally:
        watchdog.cancel()
        if first.poll() is None:
            first.kill()
    # The lock went with the first service: a new one starts.
    again = start_serve(config, db_url)
    try:
        assert again.stderr is not None
        started = next(line for line in again.stderr if '"event": ' in line)
        assert json.loads(started)["event"] == "start"
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=30) == 0
    finally:
        if again.poll() is None:
            again.kill()


def events(child: subprocess.Popen[str]) -> Iterator[dict[str, Any]]:
    """The JSON lines a service logs on stderr, as they come."""
    assert child.stderr is not None
    return (json.loads(line) for line in child.stderr if line.startswith("{"))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_serve_takes_its_lock_again_after_a_postgres_restart_and_stops_for_another_holder(
    db_url: str, tmp_path: Path
) -> None:
    """A PostgreSQL restart ends the session that holds the service's lock. The service went on
    without it until it was restarted, and a second `serve` started meanwhile got the lock:
    both ran every job. Now the service takes the lock again (a second `serve` is refused
    again), and stops with exit 75 when another one took it first."""
    config = tmp_path / "vpt-tracker.toml"
    config.write_text('[schedule]\ntimezone = "UTC"\n')
    engine = make_engine(db_url)
    first = start_serve(config, db_url, check_every=0.2)
    others: list[subprocess.Popen[str]] = []
    watchdog = threading.Timer(120, first.kill)
    watchdog.start()
    try:
        lines = events(first)
        assert next(lines)["event"] == "start"
        ended = end_lock_session(engine, "serve")
        assert next(lines)["event"] == "lock_taken_again"
        with engine.connect() as connection:
            assert lock_holders(connection, "serve") not in ([], [ended])
        others.append(refused := start_serve(config, db_url))
        _, err = refused.communicate(timeout=30)
        assert refused.returncode == 75 and err.startswith("Error: another vpt-tracker serve is running"), err

        # The session ends again, and another service starts before the first one looks.
        os.kill(first.pid, signal.SIGSTOP)
        try:
            end_lock_session(engine, "serve")
            others.append(second := start_serve(config, db_url))
            assert next(events(second))["event"] == "start"
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=30) == 75
        assert first.stderr is not None
        rest = first.stderr.read().splitlines()
        assert [json.loads(line)["event"] for line in rest[:-1]] == ["lock_lost", "stopped"]
        assert rest[-1].startswith(
            "Error: another vpt-tracker serve is running on this database: it took the lock while"
        )
        with engine.connect() as connection:
            assert len(lock_holders(connection, "serve")) == 1  # the second service's
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    finally:
        watchdog.cancel()
        for child in (first, *others):
            if child.poll() is None:
                child.kill()
        engine.dispose()


def test_sigterm_lets_the_job_in_progress_finish_and_log_its_line(tmp_path: Path) -> None:
    """The README's promise for `docker stop` and systemd: the nightly run under way when
    SIGTERM comes completes (its run is not left for the next one to resume), logs its line,
    and the service then exits 0."""
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        routes.answer.clear()  # the run's one request waits in flight
        config = tmp_path / "vpt-tracker.toml"
        disabled = "".join(
            f"[sources.{name}]\nenabled = false\n" for name in ("arxiv_api", "openreview", "cvf")
        )
        config.write_text(
            f'database_url = "sqlite:///{tmp_path / "serve.db"}"\n'
            "[http]\nmax_retries = 0\ndefault_min_interval = 0\nmin_interval = {}\nhost_groups = {}\n"
            f'{disabled}[sources.arxiv_rss]\nbase_url = "{base}/rss"\ncategories = ["cs.CV"]\n'
            '[schedule]\ntimezone = "UTC"\nnightly = "* * * * *"\n'
        )
        child = start_serve(config, f"sqlite:///{tmp_path / 'serve.db'}")
        watchdog = threading.Timer(150, child.kill)
        watchdog.start()
        try:
            deadline = time.monotonic() + 90  # the job starts at the next full minute
            while not routes.requests and time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.2)
            assert routes.requests, "the nightly job did not start"
            child.send_signal(signal.SIGTERM)
            time.sleep(1)
            assert child.poll() is None  # still finishing the job
            routes.answer.set()
            assert child.wait(timeout=60) == 0
            assert child.stderr is not None
            lines = [json.loads(line) for line in child.stderr.read().splitlines() if line.startswith("{")]
        finally:
            watchdog.cancel()
            routes.answer.set()
            if child.poll() is None:
                child.kill()
    assert [line["event"] for line in lines] == ["start", "stop", "stopped", "job"]
    job = lines[-1]
    assert job["job"] == "nightly" and job["outcome"] == "ok", job
    engine = make_engine(f"sqlite:///{tmp_path / 'serve.db'}")
    runs = recent_runs(engine)
    engine.dispose()
    assert [(run.id, run.outcome) for run in runs] == [(job["run_id"], "ok")]
