"""Operations commands: `run nightly|backfill`, `runs`, `digest build|send`, `serve`, `demo`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vpt_tracker.cli.context import (
    OUTPUT_PATH,
    AppContext,
    echo_json,
    pass_app,
    secret_values,
    to_stdout,
    write_output,
)
from vpt_tracker.wording import plural

if TYPE_CHECKING:
    from vpt_tracker.pipeline import RunResult

log = logging.getLogger(__name__)


@contextmanager
def progress_reporter(label: str) -> Iterator[Callable[[str, int], None]]:
    """A rich progress display on a terminal, one log line per page otherwise."""
    if not sys.stderr.isatty():

        def plain(source: str, records: int) -> None:
            log.info("%s: %s has stored %d records", label, source, records)

        yield plain
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.completed} records"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:

        def update(source: str, records: int) -> None:
            if source not in tasks:
                tasks[source] = progress.add_task(f"{label}: {source}", total=None)
            progress.update(tasks[source], completed=records)

        yield update


def _print_result(result: RunResult) -> None:
    sources = result.counts.get("sources", {})
    for name in sorted(sources):
        counts = sources[name]
        health = result.health.get(name, {})
        state = "healthy" if health.get("healthy", True) else f"UNHEALTHY ({health.get('reason')})"
        windows = len(counts.get("refetched") or ())
        refetched = f", refetched {plural(windows, 'window')}" if windows else ""
        click.echo(
            f"  {name}: {plural(counts['records'], 'record')}, {plural(counts['new_papers'], 'new paper')}, "
            f"{plural(counts['pages'], 'page')}{refetched}; {state}"
        )
        for problem in health.get("problems", []):
            click.echo(f"  {name}: {problem}", err=True)
    from vpt_tracker.enqueue import EnqueueStats

    for name, stats in sorted(result.counts.get("catalogues", {}).items()):
        # A nightly run stores one dict of counts per catalogue, a backfill one per window.
        rounds = stats if isinstance(stats, list) else [stats]
        caught_up = sum(int(r.get("caught_up") or 0) for r in rounds)
        owed = f"; caught up {plural(caught_up, 'paper')} it owed" if caught_up else ""
        click.echo(f"  catalogue {name}: {EnqueueStats.total(name, rounds).summary()}{owed}")
    for key, message in sorted(result.errors.items()):
        if key.startswith("catalogue:"):
            click.echo(f"  {key}: {message}", err=True)
    click.echo(
        f"run {result.run_id} ({result.kind}): {result.outcome.value}, "
        f"{plural(result.counts.get('records', 0), 'record')}, "
        f"{plural(result.counts.get('new_papers', 0), 'new paper')} "
        f"in {result.duration_s:.1f}s"
    )


@click.group("run")
def run_group() -> None:
    """Run the pipeline once (cron-friendly): exit 0 ok, 1 some sources failed, 2 bad config or
    input, 69 the database is unavailable, 75 already running, 130 Ctrl-C."""


@run_group.command("nightly")
@pass_app
def run_nightly(app: AppContext) -> None:
    """Fetch every enabled source for the new window, ingest, score and enqueue.

    Windows that sources missed earlier (errors, far fewer records than usual) are fetched
    again first. A run killed half-way is completed by the next one.

    \b
    Example (crontab: 06:30 in the host's time zone; cron starts in $HOME, so name the config):
      30 6 * * *  VPT_CONFIG=/etc/vpt-tracker.toml /opt/vpt-tracker/bin/vpt-tracker run nightly
    """
    from vpt_tracker.pipeline import nightly

    settings = app.settings
    engine = app.engine()
    with progress_reporter("nightly") as progress:
        result = nightly(settings, engine, progress=progress)
    _print_result(result)
    sys.exit(result.exit_code)


def _parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2025-06-01", param_hint=option) from None


@run_group.command("backfill")
@click.option("--since", required=True, metavar="DATE", help="First day to fetch (YYYY-MM-DD).")
@click.option("--until", metavar="DATE", help="Last day to fetch, inclusive (default: today).")
@click.option("--step-days", type=click.IntRange(1, 92), default=7, show_default=True, help="Window size.")
@pass_app
def run_backfill(app: AppContext, since: str, until: str | None, step_days: int) -> None:
    """Fetch history in resumable windows; rerun the same command to resume after a failure.

    Example:  vpt-tracker run backfill --since 2025-01-01 --until 2025-03-31
    """
    from vpt_tracker.pipeline import backfill

    first = _parse_day(since, "--since")
    last = _parse_day(until, "--until")
    assert first is not None
    settings = app.settings
    engine = app.engine()
    with progress_reporter("backfill") as progress:
        result = backfill(settings, engine, first, last, step_days=step_days, progress=progress)
    _print_result(result)
    click.echo(
        f"windows: {result.counts['windows']} ({result.counts['windows_skipped']} source windows done before)"
    )
    sys.exit(result.exit_code)


@click.command("runs")
@click.option(
    "--last",
    "last",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="How many runs to show.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run records as JSON.")
@pass_app
def runs_command(app: AppContext, last: int, as_json: bool) -> None:
    """Show the recent runs: outcome, records per source, and each source's health."""
    from vpt_tracker.pipeline import pending_refetches, recent_runs
    from vpt_tracker.sources import enabled_source_names

    engine = app.engine()
    rows = recent_runs(engine, last)
    if as_json:
        echo_json(
            [
                {
                    "id": row.id,
                    "kind": row.kind,
                    "started_at": row.started_at,
                    "finished_at": row.finished_at,
                    "duration_s": row.duration_s,
                    "outcome": row.outcome,
                    "window": [row.window_start, row.window_end],
                    "counts": row.counts,
                    "errors": row.errors,
                    "health": row.health,
                }
                for row in rows
            ]
        )
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"last {plural(len(rows), 'run')}")
    for column in ("id", "kind", "started (UTC)", "took", "outcome", "records", "health"):
        table.add_column(column)
    for row in rows:
        sources = (row.counts or {}).get("sources", {})
        health = []
        for name in sorted(set(sources) | set(row.health or {})):
            state = (row.health or {}).get(name, {})
            records = sources.get(name, {}).get("records", 0)
            healthy = state.get("healthy", True)
            # Why, as `run` printed it: a bare UNHEALTHY sent the maintainer to `runs --json`.
            why = f" ({state['reason']})" if not healthy and state.get("reason") else ""
            health.append(f"{name} {records} {'ok' if healthy else 'UNHEALTHY'}{why}")
        if "run" in (row.errors or {}):
            health.append(row.errors["run"])
        # A catalogue whose scoring failed makes a run `partial` with every source ok: say so.
        errors = sorted((row.errors or {}).items())
        health.extend(f"{key}: {message}" for key, message in errors if key.startswith("catalogue:"))
        cells = (
            str(row.id),
            row.kind,
            row.started_at.strftime("%Y-%m-%d %H:%M"),
            f"{row.duration_s:.1f}s" if row.duration_s is not None else "-",
            row.outcome,
            str((row.counts or {}).get("records", "-")),
            "\n".join(health) or "-",
        )
        # Text, not markup: an error may quote "[cs.CV]" (Rich would hide it) or "[/]" (a crash).
        table.add_row(*(Text(cell) for cell in cells))
    if rows:
        Console(width=120).print(table)
    else:  # not an empty table titled "last 0 runs"
        click.echo("no runs recorded yet")
    # A disabled source's windows stay queued for when it is enabled again: no run fetches
    # them meanwhile, so "on the next run" would be untrue (it was said of them too).
    enabled = set(enabled_source_names(app.settings))
    queued = pending_refetches(engine)
    for heading, items in (
        ("queued for refetch on the next run", [item for item in queued if item.source in enabled]),
        (
            "queued for a disabled source, fetched once it is enabled again",
            [item for item in queued if item.source not in enabled],
        ),
    ):
        if items:
            click.echo(f"{plural(len(items), 'window')} {heading}:")
        for item in items:
            click.echo(
                f"  {item.source} {item.window_start:%Y-%m-%d %H:%M} .. "
                f"{item.window_end:%Y-%m-%d %H:%M}: {item.reason}"
            )


@click.group("digest")
def digest_group() -> None:
    """Build or send the weekly digest email."""


WEEK_HELP = (
    "ISO week like 2026-W47, 'current' or 'last' (default: the last complete week),"
    " Monday to Monday in schedule.timezone."
)


@digest_group.command("build")
@click.option("--week", metavar="WEEK", help=WEEK_HELP)
@click.option("--output", type=OUTPUT_PATH, help="Write the email (.eml) here.")
@click.option(
    "--html",
    "html_path",
    type=OUTPUT_PATH,
    help="Write the HTML part here (instead of printing the text part, as --output does).",
)
@pass_app
def digest_build(app: AppContext, week: str | None, output: Path | None, html_path: Path | None) -> None:
    """Build the digest without sending it: print the text part, or write the .eml and/or the HTML part.

    Example:  vpt-tracker digest build --week 2026-W47 --output digest.eml
    """
    from vpt_tracker.config import schedule_timezone
    from vpt_tracker.digest import build_digest, parse_week, render, to_message

    now = datetime.now(UTC)
    chosen = parse_week(week, now, schedule_timezone(app.settings))
    digest = build_digest(app.engine(), chosen, now=now, settings=app.settings)
    text, html = render(digest)
    if output is None and html_path is None:
        with write_output(None) as out:
            out.write(text)
        return
    if output is not None:
        with write_output(output, binary=True) as out:
            out.write(bytes(to_message(digest, app.settings)))
        _wrote(output, f" ({digest.subject})")
    if html_path is not None:
        with write_output(html_path) as out:
            out.write(html)
        _wrote(html_path)


def _wrote(path: Path, note: str = "") -> None:
    """Say what was written; on stderr when the file itself went to standard output (`-`)."""
    where = "standard output" if to_stdout(path) else str(path)
    click.echo(f"wrote {where}{note}", err=to_stdout(path))


@digest_group.command("send")
@click.option("--week", metavar="WEEK", help=WEEK_HELP)
@click.option("--force", is_flag=True, help="Send even if this week's digest was already sent.")
@pass_app
def digest_send(app: AppContext, week: str | None, force: bool) -> None:
    """Send the digest to smtp.recipients; a week already sent is refused without --force.

    Exit code 1 when the SMTP server refuses or cannot be reached: the digest is then marked
    for retry, and `serve` retries it with the next digest job. Exit code 2 for a week already
    sent (or a bad week or config), 75 while another process sends the same week.
    """
    from vpt_tracker.config import schedule_timezone
    from vpt_tracker.digest import parse_week, send_digest

    now = datetime.now(UTC)
    chosen = parse_week(week, now, schedule_timezone(app.settings))
    result = send_digest(app.settings, app.engine(), chosen, force=force, now=now)
    refused = "".join(
        f"; the server refused {address} ({reply})" for address, reply in sorted(result.refused.items())
    )
    click.echo(f"sent digest {result.week} to {', '.join(result.recipients)}{refused}: {result.subject}")


@click.command("serve")
@pass_app
def serve_command(app: AppContext) -> None:
    """Run the scheduler: the nightly run and the weekly digest on `schedule.*` cron lines.

    Logs one JSON line per job run on stderr; stops cleanly on SIGTERM or Ctrl-C.
    """
    from vpt_tracker import logs
    from vpt_tracker.scheduler import serve

    settings = app.settings
    # One line per job is the contract: what a job's code logs goes into its line (-vv: not).
    quiet = app.verbosity < 2
    logs.configure(
        max(app.verbosity, 1), secrets=secret_values(settings), json_lines=True, one_line_per_job=quiet
    )
    if quiet:  # the libraries' own INFO chatter is not part of it either
        for noisy in ("apscheduler", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    serve(settings, app.engine())


@click.command("demo")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the demo database, digest and diffs go (those files are replaced on each run;"
    " nothing else in the folder is touched).",
)
@click.option(
    "--top", type=click.IntRange(1, 20), default=3, show_default=True, help="Queue lines per catalogue."
)
def demo_command(output_dir: Path, top: int) -> None:
    """Run the whole product offline on bundled recorded feeds (no network, in seconds).

    Starts a local replay server, runs the real nightly pipeline into a fresh SQLite
    database, imports the three preset catalogues, prints the review queue, builds the
    digest (.eml and .html) and shows the README diff that publishing would make.
    """
    from vpt_tracker.demo import run_demo

    run_demo(output_dir, top=top, echo=click.echo)


def register(main: click.Group) -> None:
    main.add_command(run_group)
    main.add_command(runs_command)
    main.add_command(digest_group)
    main.add_command(serve_command)
    main.add_command(demo_command)
