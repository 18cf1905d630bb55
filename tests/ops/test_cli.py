"""The operations commands end to end through click: output, files and exit codes."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select

from ops.feeds import feed_server
from ops.seed import queue_at, seed_week
from ops.smtp import AS_AT_A_TERMINAL, free_port, smtp_server
from unprivileged import run_cli
from vpt_tracker.cli import main
from vpt_tracker.locks import exclusive
from vpt_tracker.pipeline import DONE_KEY, recent_runs
from vpt_tracker.replay import ReplayServer
from vpt_tracker.store import transaction
from vpt_tracker.store.migrate import upgrade
from vpt_tracker.store.tables import CursorRow, DigestRow, RefetchWindowRow, RunRow


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vpt-tracker.toml"
    path.write_text(text)
    return path


SOURCES = ("arxiv_api", "arxiv_rss", "openreview", "cvf")


def only_source(source: str, settings: str) -> str:
    """A config with one source enabled (with `settings`) and impolite-fast HTTP for tests."""
    disabled = "".join(f"[sources.{other}]\nenabled = false\n" for other in SOURCES if other != source)
    http = "[http]\nmax_retries = 0\ndefault_min_interval = 0\nmin_interval = {}\nhost_groups = {}\n"
    return f"{http}{disabled}[sources.{source}]\n{settings}\n"


def rss_config(base: str, extra: str = "") -> str:
    return only_source("arxiv_rss", f'base_url = "{base}/rss"\ncategories = ["cs.CV"]\n{extra}')


def invoke(tmp_path: Path, db_url: str, config: str, *args: str) -> Result:
    path = config_file(tmp_path, config)
    return CliRunner().invoke(main, ["--config", str(path), "--database", db_url, *args])


@pytest.mark.parametrize(
    "command",
    [
        ["run"],
        ["run", "nightly"],
        ["run", "backfill"],
        ["runs"],
        ["digest"],
        ["digest", "build"],
        ["digest", "send"],
        ["serve"],
        ["demo"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_the_help_of_the_cron_commands_says_what_the_readme_says() -> None:
    """`run nightly --help` gave `30 6 * * *  vpt-tracker run nightly` as "06:30 UTC daily":
    cron reads the line in the host's zone, and a line without VPT_CONFIG, run from $HOME,
    reads no config (the README's line sets it). `run --help` left out exit codes 2 and 130,
    `digest send --help` 2 (sent already) and 75 (being sent)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [cron_line] = re.findall(r"^30 6 \* \* \* .* run nightly", readme, flags=re.M)

    def help_of(*command: str) -> str:
        result = CliRunner().invoke(main, [*command, "--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    nightly_help = help_of("run", "nightly")
    assert " ".join(cron_line.split()) in nightly_help and "UTC" not in nightly_help
    assert "host's time zone" in nightly_help
    codes = help_of("run")
    for code in ("0 ok", "1 some sources", "2 bad config", "69 the database", "75 already", "130 Ctrl-C"):
        assert code in codes, code
    send = help_of("digest", "send")
    assert "Exit code 2 for a week already sent" in send and "75 while another process" in send


def test_python_dash_m_runs_the_command() -> None:
    """`python -m vpt_tracker` is the same command, for a venv whose scripts are not on PATH."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "vpt_tracker", "run", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith("Usage: vpt-tracker run "), result.stderr


def test_a_ctrl_c_d_nightly_run_exits_130_and_records_interrupted(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `ingest-jsonl` records it: the run said "crashed: KeyboardInterrupt: "."""
    from vpt_tracker import pipeline

    def interrupt(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "enqueue_all", interrupt)  # Ctrl-C while scoring
    with feed_server() as (routes, base):
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        result = invoke(tmp_path, db_url, rss_config(base), "run", "nightly")
    assert (result.exit_code, result.stderr) == (130, "Error: interrupted\n")
    [row] = recent_runs(engine)
    assert row.outcome == "failed" and row.errors["run"] == "interrupted (Ctrl-C)"


def test_run_nightly_exit_codes_and_runs_listing(engine: Engine, db_url: str, tmp_path: Path) -> None:
    with feed_server() as (routes, base):
        # Not today's announcement: an ok run with no records.
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        ok = invoke(tmp_path, db_url, rss_config(base), "run", "nightly")
        assert ok.exit_code == 0, ok.output
        assert "arxiv_rss: 0 records" in ok.output and ": ok," in ok.output

        routes.fail("/rss/cs.CV")
        failed = invoke(tmp_path, db_url, rss_config(base), "run", "nightly")
        assert failed.exit_code == 1
        assert "UNHEALTHY (error: arxiv_rss: GET" in failed.stdout and "503" in failed.stdout

        with exclusive(engine, "pipeline"):
            busy = invoke(tmp_path, db_url, rss_config(base), "run", "nightly")
        assert busy.exit_code == 75
        assert busy.stderr.count("\n") == 1 and busy.stderr.startswith(
            "Error: another vpt-tracker pipeline run"
        )

    listing = invoke(tmp_path, db_url, rss_config(base), "runs", "--last", "5")
    assert listing.exit_code == 0
    assert "UNHEALTHY" in listing.output and "1 window queued for refetch" in listing.output
    as_json = invoke(tmp_path, db_url, rss_config(base), "runs", "--json")
    runs = json.loads(as_json.output)
    assert [run["outcome"] for run in runs] == ["failed", "ok"]
    assert len(recent_runs(engine)) == 2  # the refused run left no row
    # The source switched off: no run fetches its window until it is switched on again.
    disabled = "".join(f"[sources.{name}]\nenabled = false\n" for name in SOURCES)
    off = invoke(tmp_path, db_url, disabled, "runs")
    assert off.exit_code == 0 and "queued for refetch" not in off.output, off.output
    assert "1 window queued for a disabled source, fetched once it is enabled again:" in off.output
    assert "  arxiv_rss " in off.output.split("enabled again:")[1]


def test_runs_shows_an_error_with_brackets_as_written(engine: Engine, db_url: str, tmp_path: Path) -> None:
    message = "query cat:[cs.CV] refused [/] after 3 tries"
    with transaction(engine) as session:
        session.add(RunRow(kind="nightly", outcome="failed", errors={"run": message}, counts={}, health={}))
    listing = invoke(tmp_path, db_url, "", "runs")
    assert listing.exit_code == 0, listing.output
    assert "cat:[cs.CV] refused [/] after" in " ".join(listing.output.split())
    assert "last 1 run " in listing.output  # it said "last 1 runs"


def test_runs_says_why_a_run_is_partial(engine: Engine, db_url: str, tmp_path: Path) -> None:
    """A run whose catalogue could not be scored (configured, not imported yet) is `partial`,
    and `runs` showed it with every source "ok" and nothing else; an unhealthy source was a
    bare UNHEALTHY. The table now gives the catalogue's error and the source's reason, as
    `run nightly` printed them."""
    scoring = "unknown catalogue 'awesome-vpt'; known catalogues: none yet"
    refused = "error: arxiv_rss: GET http://127.0.0.1:9/rss/cs.CV answered HTTP 503"
    counts = {"sources": {"arxiv_rss": {"records": 171}}, "records": 171}
    with transaction(engine) as session:
        session.add(
            RunRow(
                kind="nightly",
                outcome="partial",
                counts=counts,
                errors={"catalogue:awesome-vpt": scoring},
                health={"arxiv_rss": {"healthy": True, "reason": None}},
            )
        )
        session.add(
            RunRow(
                kind="nightly",
                outcome="failed",
                counts={"sources": {"arxiv_rss": {"records": 0}}, "records": 0},
                errors={"arxiv_rss": refused[len("error: ") :]},
                health={"arxiv_rss": {"healthy": False, "reason": refused}},
            )
        )
    listing = invoke(tmp_path, db_url, "", "runs")
    assert listing.exit_code == 0, listing.output
    text = " ".join(listing.output.replace("│", " ").split())
    assert f"arxiv_rss 171 ok catalogue:awesome-vpt: {scoring}" in text
    assert f"arxiv_rss 0 UNHEALTHY ({refused})" in text


def test_runs_of_an_empty_store_says_there_are_none(engine: Engine, db_url: str, tmp_path: Path) -> None:
    """No run yet: it printed an empty table titled "last 0 runs"."""
    listing = invoke(tmp_path, db_url, "", "runs")
    assert listing.exit_code == 0, listing.output
    assert listing.output == "no runs recorded yet\n"


def test_a_run_summary_counts_one_of_each_as_one(capsys: pytest.CaptureFixture[str]) -> None:
    """A quiet night stores one record from one page: the summary said "1 records, 1 new
    papers, 1 pages", "refetched 1 windows" and "caught up 1 papers it owed"."""
    from vpt_tracker.cli.ops import _print_result
    from vpt_tracker.models import RunOutcome
    from vpt_tracker.pipeline import RunResult

    window = {"start": "2026-08-19", "end": "2026-08-20"}
    one = {"records": 1, "new_papers": 1, "pages": 1, "refetched": [window]}
    _print_result(
        RunResult(
            run_id=7,
            kind="nightly",
            outcome=RunOutcome.OK,
            window=None,
            counts={
                "records": 1,
                "new_papers": 1,
                "sources": {"arxiv_rss": one},
                "catalogues": {"vpt": {"caught_up": 1}},
            },
            errors={},
            health={"arxiv_rss": {"healthy": True}},
            duration_s=1.0,
        )
    )
    out = capsys.readouterr().out
    assert "  arxiv_rss: 1 record, 1 new paper, 1 page, refetched 1 window; healthy\n" in out
    assert "; caught up 1 paper it owed\n" in out
    assert "run 7 (nightly): ok, 1 record, 1 new paper in 1.0s\n" in out


def in_kolkata(db_url: str) -> str:
    """The same database, on a PostgreSQL session whose time zone is UTC+05:30 (SQLite has none)."""
    return f"{db_url}%20-cTimeZone%3DAsia%2FKolkata" if db_url.startswith("postgresql") else db_url


def test_times_are_utc_whatever_the_database_session_time_zone(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """A PostgreSQL server set to its local time zone hands back local times: `runs` showed
    them under "started (UTC)", and the digest said "already sent (15:30 UTC)" for 10:00 UTC."""
    started = datetime(2026, 11, 18, 7, 0, tzinfo=UTC)
    with transaction(engine) as session:
        run = RunRow(kind="nightly", outcome="partial", started_at=started, counts={}, errors={}, health={})
        session.add(run)
        session.flush()
        session.add(
            RefetchWindowRow(
                source="arxiv_rss",
                window_start=started - timedelta(days=1),
                window_end=started,
                reason="error",
                run_id=run.id,
            )
        )
        session.add(
            DigestRow(
                week="2026-W47",
                status="sent",
                attempts=1,
                recipients=[],
                sent_at=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
            )
        )
    local = in_kolkata(db_url)
    listing = invoke(tmp_path, local, "", "runs")
    assert listing.exit_code == 0, listing.output
    assert "2026-11-18 07:00" in listing.output
    assert "arxiv_rss 2026-11-17 07:00 .. 2026-11-18 07:00: error" in listing.output
    [row] = json.loads(invoke(tmp_path, local, "", "runs", "--json").output)
    assert row["started_at"] == "2026-11-18 07:00:00+00:00"
    config = "[smtp]\nrecipients = ['ana@example.org']\n"
    again = invoke(tmp_path, local, config, "digest", "send", "--week", "2026-W47")
    assert again.exit_code == 2
    assert "already sent (2026-11-23 10:00 UTC)" in again.stderr


def test_bad_config_names_the_key_and_exits_2(db_url: str, tmp_path: Path) -> None:
    result = invoke(tmp_path, db_url, "[sources.arxiv_api]\npage_size = 5000\n", "run", "nightly")
    assert result.exit_code == 2
    assert "sources.arxiv_api.page_size" in result.stderr
    port = invoke(tmp_path, db_url, "[smtp]\nport = 'abc'\n", "digest", "send")
    assert port.exit_code == 2 and "smtp.port" in port.stderr
    schedule = invoke(tmp_path, db_url, "[schedule]\nnightly = 'at dawn'\n", "serve")
    assert schedule.exit_code == 2 and "schedule.nightly" in schedule.stderr
    broken = invoke(tmp_path, db_url, "[schedule\n", "runs")
    assert broken.exit_code == 2 and "is not valid TOML" in broken.stderr


def test_backfill_rejects_bad_dates(db_url: str, tmp_path: Path) -> None:
    result = invoke(tmp_path, db_url, "", "run", "backfill", "--since", "last week")
    assert result.exit_code == 2 and "--since" in result.stderr
    reversed_ = invoke(
        tmp_path,
        db_url,
        rss_config("http://127.0.0.1:9"),
        "run",
        "backfill",
        "--since",
        "2026-08-10",
        "--until",
        "2026-08-01",
    )
    assert reversed_.exit_code == 2 and "is before --since" in reversed_.stderr


def test_digest_build_writes_eml_and_html(engine: Engine, db_url: str, tmp_path: Path) -> None:
    seed_week(engine)
    (tmp_path / "out").mkdir()
    eml, html = tmp_path / "out" / "digest.eml", tmp_path / "out" / "digest.html"
    config = "[smtp]\nrecipients = ['ana@example.org']\n[[catalogues]]\nname = 'awesome-vpt'\n"
    result = invoke(
        tmp_path,
        db_url,
        config,
        "digest",
        "build",
        "--week",
        "2026-W47",
        "--output",
        str(eml),
        "--html",
        str(html),
    )
    assert result.exit_code == 0, result.output
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"] == "ana@example.org"
    assert message["Subject"].startswith("vpt-tracker digest 2026-W47: 4 new candidates")
    assert "&lt;script&gt;" in html.read_text()
    text = invoke(tmp_path, db_url, config, "digest", "build", "--week", "2026-W47")
    assert "Visual Prompt Tuning at Scale" in text.output
    bad = invoke(tmp_path, db_url, config, "digest", "build", "--week", "week 47")
    assert bad.exit_code == 2 and "ISO week" in bad.stderr


CATALOGUE = "[[catalogues]]\nname = 'awesome-vpt'\n"


def test_digest_build_and_send_take_the_week_in_the_schedule_time_zone(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """`--week 2026-W47` in Asia/Tokyo is Monday 2026-11-16 00:00 JST (Sunday 15:00 UTC) to
    the next Monday: what was queued on that Monday morning is in it, as in the serve job."""
    seed_week(engine)
    queue_at(engine, datetime(2026, 11, 15, 18, tzinfo=UTC))  # Monday 03:00 JST; UTC's week 46
    with smtp_server() as (inbox, port):
        config = (
            "[schedule]\ntimezone = 'Asia/Tokyo'\n"
            f"[smtp]\nhost = '127.0.0.1'\nport = {port}\nsecurity = 'none'\nrecipients = ['a@example.org']\n"
            f"{CATALOGUE}"
        )
        built = invoke(tmp_path, db_url, config, "digest", "build", "--week", "2026-W47")
        assert built.exit_code == 0, built.output
        assert "(2026-11-16 to 2026-11-23, exclusive, Monday 00:00 Asia/Tokyo)" in built.output
        assert "Queued 2026-11-15 18:00:00 UTC" in built.output
        sent = invoke(tmp_path, db_url, config, "digest", "send", "--week", "2026-W47")
        assert sent.exit_code == 0, sent.output
        assert "2026-W47: 5 new candidates" in sent.output
    assert len(inbox.messages) == 1
    utc = invoke(tmp_path, db_url, CATALOGUE, "digest", "build", "--week", "2026-W47")
    assert "Monday 00:00 UTC" in utc.output and "Queued 2026-11-15" not in utc.output


def test_digest_send_exit_codes(engine: Engine, db_url: str, tmp_path: Path) -> None:
    seed_week(engine)
    dead = (
        f"[smtp]\nhost = '127.0.0.1'\nport = {free_port()}\nsecurity = 'none'\n"
        "recipients = ['a@example.org']\n"
    )
    unsent = invoke(tmp_path, db_url, dead, "digest", "send", "--week", "2026-W47")
    assert unsent.exit_code == 1 and "marked for retry" in unsent.stderr
    with smtp_server() as (inbox, port):
        live = dead.replace(dead.split("port = ")[1].split("\n")[0], str(port))
        sent = invoke(tmp_path, db_url, live, "digest", "send", "--week", "2026-W47")
        assert sent.exit_code == 0 and "sent digest 2026-W47 to a@example.org" in sent.output
        again = invoke(tmp_path, db_url, live, "digest", "send", "--week", "2026-W47")
        assert again.exit_code == 2 and "already sent" in again.stderr
        forced = invoke(tmp_path, db_url, live, "digest", "send", "--week", "2026-W47", "--force")
        assert forced.exit_code == 0
    assert len(inbox.messages) == 2


def arxiv_api_config(server: ReplayServer) -> str:
    """Only the arXiv API source, on the replay server (which answers whatever the dates)."""
    return only_source("arxiv_api", f'base_url = "{server.urls()["arxiv_api"]}"')


def today_for_a_while() -> date:
    """Today (UTC), waiting out the last seconds of a day so that a test sees one date."""
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    if midnight - now < timedelta(seconds=30):
        time.sleep((midnight - now).total_seconds() + 1)
    return datetime.now(UTC).date()


def test_backfill_refuses_a_future_day(engine: Engine, db_url: str, tmp_path: Path) -> None:
    today = today_for_a_while()
    later = (today + timedelta(days=2)).isoformat()
    config = rss_config("http://127.0.0.1:9")
    since = invoke(tmp_path, db_url, config, "run", "backfill", "--since", later)
    assert since.exit_code == 2
    assert since.stderr == f"Error: --since {later} is in the future (today is {today} UTC)\n"
    until = invoke(tmp_path, db_url, config, "run", "backfill", "--since", str(today), "--until", later)
    assert until.exit_code == 2
    assert until.stderr == f"Error: --until {later} is in the future (today is {today} UTC)\n"
    # A typo for 2025: 94,000 weekly windows, each with an arXiv date that went out mangled.
    typo = invoke(tmp_path, db_url, config, "run", "backfill", "--since", "0225-01-01")
    assert typo.exit_code == 2
    assert typo.stderr == (
        "Error: --since 0225-01-01 is before 1991-08-01, when arXiv opened: no source has papers that old\n"
    )
    assert recent_runs(engine) == []  # refused before anything ran


def test_a_backfill_window_that_ends_after_now_is_not_done(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    today = today_for_a_while()
    with ReplayServer() as server:
        config = arxiv_api_config(server)
        first = invoke(tmp_path, db_url, config, "run", "backfill", "--since", str(today))
        assert first.exit_code == 0, first.output
        assert "arxiv_api: 32 records" in first.output
        # Today's window ends at midnight: more papers may come, so it is fetched again.
        server.requests.clear()
        second = invoke(tmp_path, db_url, config, "run", "backfill", "--since", str(today))
        assert second.exit_code == 0, second.output
        assert "windows: 1 (0 source windows done before)" in second.output
        assert len(server.requests) == 1
        # A window that has ended is done once fetched, and skipped from then on.
        past = str(today - timedelta(days=3))
        invoke(tmp_path, db_url, config, "run", "backfill", "--since", past, "--until", past)
        server.requests.clear()
        again = invoke(tmp_path, db_url, config, "run", "backfill", "--since", past, "--until", past)
        assert "windows: 1 (1 source windows done before)" in again.output and server.requests == []
    with transaction(engine) as session:
        done = session.scalars(select(CursorRow.key).where(CursorRow.key.endswith(DONE_KEY))).all()
        today_keys = CursorRow.key.contains(f"backfill:{today}")
        cursors = session.scalars(select(CursorRow.value).where(today_keys)).all()
    assert done == [f"backfill:{past}:{date.fromisoformat(past) + timedelta(days=1)}:{DONE_KEY}"]
    assert cursors and all(json.loads(value or "{}")["done"] is False for value in cursors)


def test_digest_refuses_a_week_in_the_future_or_out_of_range(db_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    year, week, _ = (now + timedelta(days=14)).isocalendar()
    future = f"{year}-W{week:02d}"
    for command in ("build", "send"):
        result = invoke(tmp_path, db_url, "", "digest", command, "--week", future)
        assert result.exit_code == 2
        assert result.stderr.startswith(f"Error: --week {future!r} is in the future")
        assert result.stderr.count("\n") == 1
        far = invoke(tmp_path, db_url, "", "digest", command, "--week", "9999-W52")
        assert far.exit_code == 2 and far.stderr.startswith("Error: --week '9999-W52' is in the future")
        zero = invoke(tmp_path, db_url, "", "digest", command, "--week", "0000-W01")
        assert zero.exit_code == 2 and zero.stderr.startswith("Error: --week '0000-W01'")
        assert zero.stderr.count("\n") == 1
    current = invoke(tmp_path, db_url, "", "digest", "build", "--week", "current")
    assert current.exit_code == 0, current.output


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_any_delivery_error_marks_the_digest_failed(
    engine: Engine, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not only SMTP and socket errors: a password SMTP AUTH cannot carry (UnicodeEncodeError)."""
    seed_week(engine)
    caplog.set_level(logging.ERROR, logger="mail.log")  # aiosmtpd's warning about AUTH without TLS
    with smtp_server(credentials=("digest", "pässwort")) as (inbox, port):
        config = (
            f"[smtp]\nhost = '127.0.0.1'\nport = {port}\nsecurity = 'none'\nusername = 'digest'\n"
            "recipients = ['a@example.org']\n"
        )
        path = str(config_file(tmp_path, config))
        command = ["--config", path, "--database", db_url, "digest", "send", "--week", "2026-W47"]
        result = CliRunner().invoke(main, command, env={"VPT_SMTP__PASSWORD": "pässwort"})
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"Error: digest 2026-W47 not sent: sending through 127.0.0.1:{port} failed"
    )
    assert "UnicodeEncodeError" in result.stderr and "marked for retry" in result.stderr
    assert "pässwort" not in result.stderr and inbox.messages == []
    with transaction(engine) as session:
        row = session.scalar(select(DigestRow).where(DigestRow.week == "2026-W47"))
    assert row is not None and row.status == "failed" and row.attempts == 1
    assert "UnicodeEncodeError" in (row.last_error or "")


def test_a_result_file_has_a_temporary_name_of_its_own_and_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every `--output FILE` was written through `FILE.tmp`: two commands writing one path
    (a cron job and a maintainer) shared it, and one renamed the other's half-written file
    in; nor was it fsynced before the rename, so a power loss could leave an empty result."""
    import os

    from vpt_tracker.cli.context import write_output

    target = tmp_path / "scores.jsonl"
    other = tmp_path / "scores.jsonl.tmp"  # another writer's, by the old fixed name
    other.write_text("half of another run's output")
    synced: list[int] = []
    fsync = os.fsync

    def record(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    with write_output(target) as out:
        out.write("whole\n")
        written = Path(out.name)
    assert target.read_text() == "whole\n" and other.read_text() == "half of another run's output"
    assert written != other and not written.exists()
    assert target.stat().st_ino in synced and tmp_path.stat().st_ino in synced  # the file, then its folder


def test_digest_build_output_errors_are_one_line(engine: Engine, db_url: str, tmp_path: Path) -> None:
    seed_week(engine)
    week = ["digest", "build", "--week", "2026-W47"]
    missing = tmp_path / "no-such-folder" / "digest.eml"
    result = invoke(tmp_path, db_url, "", *week, "--output", str(missing))
    assert result.exit_code == 2
    assert result.stderr == f"Error: cannot write {missing}: No such file or directory\n"
    assert not missing.parent.exists()
    folder = tmp_path / "a-folder"
    folder.mkdir()
    result = invoke(tmp_path, db_url, "", *week, "--html", str(folder))
    assert result.exit_code == 2 and result.stderr == f"Error: cannot write {folder}: Is a directory\n"
    assert list(folder.iterdir()) == [] and list(tmp_path.glob("*.tmp")) == []
    # A folder without write permission (enforced even for root), in a process of its own.
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    target = locked / "digest.eml"
    denied = run_cli("--database", db_url, *week, "--output", str(target), env={"VPT_CONFIG": ""})
    assert denied.returncode == 2, denied.stderr
    assert denied.stderr == f"Error: cannot write {target}: Permission denied\n"
    assert list(locked.iterdir()) == []


INTERRUPT_WHILE_LOADING = """
import os, signal, sys, threading, time

def interrupt():  # once the command line is loading (its handler is in), press Ctrl-C
    while signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt, daemon=True).start()
sys.argv = ["vpt-tracker", "--help"]
from vpt_tracker.cli import main
main()
"""


def test_ctrl_c_while_the_commands_load_is_one_line_and_exit_130() -> None:
    """Loading the commands takes seconds on a busy machine; a Ctrl-C then (the wrong command
    typed) was a KeyboardInterrupt traceback of forty lines from inside an import, exit 1."""
    import subprocess
    import sys

    child = subprocess.run(
        [sys.executable, "-c", INTERRUPT_WHILE_LOADING], capture_output=True, text=True, timeout=120
    )
    assert (child.returncode, child.stderr, child.stdout) == (130, "Error: interrupted\n", "")


def test_the_loaded_command_line_hands_ctrl_c_back_to_python() -> None:
    import signal

    import vpt_tracker.cli  # noqa: F401  (loaded: `run_guarded` answers a Ctrl-C from now on)

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_stops_a_run_with_exit_130_not_the_code_of_failed_sources(tmp_path: Path, db_url: str) -> None:
    """Ctrl-C in `run nightly` printed click's `Aborted!` and exited 1, the code that tells
    cron some sources failed and their windows are queued: neither was true. It exits 130
    (the shell's code for SIGINT) with one line; the run is marked failed, for the next."""
    import signal
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    arrived, release = threading.Event(), threading.Event()

    class Stalling(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            arrived.set()
            release.wait(30)
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = config_file(tmp_path, rss_config(f"http://127.0.0.1:{server.server_address[1]}"))
    command = [sys.executable, "-c", AS_AT_A_TERMINAL]
    child = subprocess.Popen(
        [*command, "--config", str(config), "--database", db_url, "run", "nightly"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert arrived.wait(60), "the run never asked for its feed"
        child.send_signal(signal.SIGINT)
        _out, err = child.communicate(timeout=60)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1] == "Error: interrupted", err
    rows = [row for row in recent_runs_of(db_url) if row.kind == "nightly"]
    assert [row.outcome for row in rows] == ["failed"]


def recent_runs_of(db_url: str) -> list[RunRow]:
    from vpt_tracker.store import make_engine

    engine = make_engine(db_url)
    try:
        return recent_runs(engine)
    finally:
        engine.dispose()


def test_run_prints_each_catalogues_counts_as_a_sentence(engine: Engine, db_url: str, tmp_path: Path) -> None:
    """`run nightly` and `run backfill` printed a catalogue's counts as a Python dict (a list
    of them for a backfill: `catalogue vpt: [{'catalogue': 'vpt', 'scored': 32, ...}]`);
    they print the line `classify enqueue` prints, summed over a backfill's windows."""
    from vpt_tracker.catalogue.service import import_catalogue
    from vpt_tracker.demo import bundled_lists
    from vpt_tracker.store import make_engine

    readme = (bundled_lists() / "awesome-vpt.md").read_text(encoding="utf-8")
    catalogue = '[[catalogues]]\nname = "vpt"\npreset = "awesome-vpt"\n'
    catalogue += '[catalogues.rules]\ninclude = ["prompt"]\n'
    backfill_store = make_engine(f"sqlite:///{tmp_path / 'backfill.db'}")
    past = str(today_for_a_while() - timedelta(days=10))
    outputs = []
    try:
        for store, url, command in [
            (engine, db_url, ["run", "nightly"]),
            (backfill_store, str(backfill_store.url), ["run", "backfill", "--since", past, "--until", past]),
        ]:
            upgrade(store)
            import_catalogue(store, "vpt", readme, preset="awesome-vpt")
            with ReplayServer() as server:
                result = invoke(tmp_path, url, arxiv_api_config(server) + catalogue, *command)
            assert result.exit_code == 0, result.output
            with transaction(store) as session:
                counts = session.scalars(select(RunRow.counts)).one()["catalogues"]["vpt"]
            outputs.append((result.stdout, counts))
    finally:
        backfill_store.dispose()
    (nightly_out, nightly), (backfill_out, [backfill]) = outputs
    for stdout, stats in ((nightly_out, nightly), (backfill_out, backfill)):
        assert stats["scored"] == 32 and stats["queued"] > 0
        assert (
            f"  catalogue vpt: scored 32, queued {stats['queued']} ({stats['queued_by_rule']} by rule, "
            f"0 excluded by rule, {stats['low_confidence']} low-confidence, 0 already listed by name)\n"
        ) in stdout
        assert "{" not in stdout


def test_digest_send_names_the_recipients_the_server_refused(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """A server that takes the digest for some recipients and refuses others: the week counts
    as sent, but `digest send` said "sent digest ... to ana@example.org, bo@example.org", bo
    included, and the `digests` row listed bo among its recipients. It names the refused now."""
    with smtp_server() as (inbox, port):
        inbox.refuse_only = {"bo@example.org"}
        config = (
            f"[smtp]\nhost = '127.0.0.1'\nport = {port}\nsecurity = 'none'\ntimeout = 5\n"
            "recipients = ['Ana <ana@example.org>', 'bo@example.org']\n"
        )
        result = invoke(tmp_path, db_url, config, "digest", "send", "--week", "2026-W40")
    assert result.exit_code == 0, result.output
    assert [rcpts for rcpts, _ in inbox.messages] == [["ana@example.org"]]
    assert result.stdout == (
        "sent digest 2026-W40 to Ana <ana@example.org>; the server refused bo@example.org "
        "(550 5.1.1 mailbox unavailable): vpt-tracker digest 2026-W40: 0 new candidates, no runs\n"
    )
    with transaction(engine) as session:
        row = session.scalars(select(DigestRow)).one()
    assert (row.week, row.status, row.recipients) == ("2026-W40", "sent", ["Ana <ana@example.org>"])


def test_a_week_label_with_a_small_w_is_the_week(db_url: str, tmp_path: Path) -> None:
    """`--week 2026-w47` was refused as "2026 has no week 47 (it has 53)"."""
    built = invoke(tmp_path, db_url, "", "digest", "build", "--week", "2026-w40")
    assert built.exit_code == 0, built.output
    assert built.stdout.startswith("vpt-tracker weekly digest 2026-W40\n")
