"""`vpt-tracker fetch SOURCE`: fetch one source for a window, and store it (or just show it)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import click
from sqlalchemy import Engine

from vpt_tracker.cli.context import AppContext, echo_json, pass_app
from vpt_tracker.errors import UserError
from vpt_tracker.models import Page, RawRecord, Window
from vpt_tracker.wording import plural

log = logging.getLogger(__name__)

SOURCE_CHOICES = ("arxiv_api", "arxiv_rss", "openreview", "cvf")
SHOWN = 5


def register(main: click.Group) -> None:
    main.add_command(fetch)


def _window(since: date | None, until: date | None, now: datetime) -> Window:
    from vpt_tracker.pipeline import check_day

    for day, option in ((since, "--since"), (until, "--until")):
        if day is not None:
            check_day(day, option, now)
    until = until or now.date()
    since = since or until - timedelta(days=1)
    if since > until:
        raise UserError(f"--since {since.isoformat()} is after --until {until.isoformat()}")
    return Window.for_days(since, until)


def _nothing_to_fetch(source: str, settings: Any) -> str | None:
    """The config key that leaves `source` nothing to ask for, when it is empty.

    `fetch openreview` with no venues (the default) said "would store 0 records from 0 pages
    (0 requests)" and exited 0, as if the venues had nothing new.
    """
    config = settings.sources
    empty = {
        "arxiv_rss": ("categories", config.arxiv_rss.categories),
        "openreview": ("venues", config.openreview.venues),
        "cvf": ("conferences", config.cvf.conferences),
    }.get(source)
    if empty is None or empty[1]:
        return None
    return f"sources.{source}.{empty[0]}"


def _describe(record: RawRecord) -> str:
    key = record.arxiv_id or record.openreview_id or record.cvf_url or record.source_id
    venue = " ".join(str(part) for part in (record.venue, record.year) if part)
    return f"{key}  {record.title}" + (f"  [{venue}]" if venue else "")


@click.command()
@click.argument("source", type=click.Choice(SOURCE_CHOICES))
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d"]),
    help="First day (UTC) of the window [default: the day before --until].",
)
@click.option(
    "--until",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Last day (UTC) of the window, included [default: today].",
)
@click.option("--dry-run", is_flag=True, help="Fetch and show what would be stored; touch no database.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def fetch(
    app: AppContext,
    source: str,
    since: datetime | None,
    until: datetime | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Fetch SOURCE (arxiv_api, arxiv_rss, openreview or cvf) for a window of days.

    Each page is stored with its cursor in one transaction, so an interrupted fetch resumes
    where it stopped when run again for the same window. Refused (exit 75) while a nightly or
    backfill run is in progress. The source's base URL, categories,
    venues and conferences come from the config (see the README, "Sources and polite HTTP").

    \b
    Examples:
      vpt-tracker fetch arxiv_api --since 2026-08-17 --until 2026-08-21
      vpt-tracker fetch cvf --dry-run
    """
    from vpt_tracker.http import HttpClient
    from vpt_tracker.pipeline import abstract_stored, cvf_page_stored
    from vpt_tracker.sources import build_source
    from vpt_tracker.sources.base import SourceError

    now = datetime.now(UTC)
    window = _window(since.date() if since else None, until.date() if until else None, now)
    settings = app.settings
    if key := _nothing_to_fetch(source, settings):
        raise UserError(f'nothing to fetch: {key} is empty in the config (see the README, "Config keys")')
    client = HttpClient(settings.http)
    # A stored run may skip the CVF pages of preprints whose abstract is stored already.
    # ... and yields no second (abstract-less) copy of a CVF paper page already stored.
    known = None if dry_run else abstract_stored(app.engine())
    stored = None if dry_run else cvf_page_stored(app.engine())
    chosen = build_source(source, settings, client, known_abstract=known, page_stored=stored)
    try:
        summary = _dry_run(chosen.fetch(window, {})) if dry_run else _store(app, chosen, window, now)
    except SourceError as exc:
        raise UserError(f"fetch failed: {exc}", exit_code=1) from None
    finally:
        client.close()
    summary.update({"source": source, "window": [window.start.isoformat(), window.end.isoformat()]})
    summary["requests"] = len(client.request_log)
    if as_json:
        echo_json(summary)
        return
    verb = "would store" if dry_run else "stored"
    click.echo(
        f"{source}: {verb} {plural(summary['records'], 'record')} from {plural(summary['pages'], 'page')} "
        f"({plural(summary['requests'], 'request')})"
    )
    for line in summary.get("first", []):
        click.echo(f"  {line}")
    if not dry_run:
        click.echo(
            f"  new papers: {summary['new_papers']}, merged: {summary['merged']}, "
            f"venue upgrades: {summary['upgraded']}"
        )
    for problem in summary.get("problems", []):
        click.echo(f"  {problem}", err=True)


def _dry_run(pages: Iterator[Page]) -> dict[str, Any]:
    records: list[RawRecord] = []
    problems: list[str] = []
    count = 0
    with _progress("fetching") as advance:
        for page in pages:
            count += 1
            records.extend(page.records)
            problems.extend(page.problems)
            advance(len(page.records))
    first = [_describe(r) for r in records[:SHOWN]]
    return {"pages": count, "records": len(records), "first": first, "problems": problems}


def _store(app: AppContext, source: Any, window: Window, now: datetime) -> dict[str, Any]:
    """Fetch and store under the pipeline's lock (`AlreadyRunning`, exit 75, while a run holds it).

    Beside a nightly or backfill run, two processes with identity indexes of their own would
    resolve the same papers and move the same source's cursors at once.
    """
    from vpt_tracker.locks import exclusive

    engine = app.engine()
    catalogues = [catalogue.name for catalogue in app.settings.catalogues]
    with exclusive(engine, "pipeline"):
        return _store_locked(engine, source, window, now, catalogues)


def _store_locked(
    engine: Engine, source: Any, window: Window, now: datetime, catalogues: list[str]
) -> dict[str, Any]:
    from vpt_tracker.ingest import ingest_page, read_cursors
    from vpt_tracker.pipeline import owe_to_catalogues, page_to_store
    from vpt_tracker.store import transaction

    with transaction(engine) as session:
        cursors = read_cursors(session, source.name)
    totals = {"pages": 0, "records": 0, "new_papers": 0, "merged": 0, "upgraded": 0}
    first: list[str] = []
    problems: list[str] = []
    with _progress("fetching and storing") as advance:
        for page in source.fetch(window, cursors):
            with transaction(engine) as session:
                stats = ingest_page(session, page_to_store(page, window, now))
                # Scored by the next run: it will find these papers stored, not new.
                owe_to_catalogues(session, catalogues, stats.new_paper_ids)
            totals["pages"] += 1
            totals["records"] += stats.records
            totals["new_papers"] += stats.new_papers
            totals["merged"] += stats.merged
            totals["upgraded"] += stats.upgraded
            first.extend(_describe(r) for r in page.records[: SHOWN - len(first)])
            problems.extend(page.problems)
            advance(len(page.records))
    return {**totals, "first": first, "problems": problems}


class _progress:
    """A rich progress bar on a terminal; plain log lines otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.total = 0
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if sys.stderr.isatty():
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=None)
        return self._advance

    def _advance(self, records: int) -> None:
        self.total += records
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.label}: {self.total} records")
        else:
            log.info("%s: %d records so far", self.label, self.total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
