"""`ingest-jsonl`, `stats` and `catalogue enrich`: bulk loads and what the store holds."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine, func, select

from vpt_tracker.cli.context import AppContext, echo_json, pass_app
from vpt_tracker.dumps import read_dump
from vpt_tracker.enrich import ArxivLookup, LocalIndex, enrich_catalogue
from vpt_tracker.errors import UserError, run_error
from vpt_tracker.ingest import IngestStats, ingest_records, keep_index_between_runs, save_index
from vpt_tracker.locks import exclusive
from vpt_tracker.models import RawRecord, RunOutcome
from vpt_tracker.pipeline import recover_interrupted
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CursorRow, EntryRow, PaperRow, RunRow, SightingRow
from vpt_tracker.wording import plural

log = logging.getLogger(__name__)

existing_file = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


@contextmanager
def _record_progress(total: int, label: str) -> Iterator[Callable[[IngestStats], None]]:
    """A rich progress bar on a terminal; otherwise a log line (-v) every 10,000 records."""
    done = 0
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda stats: bar.advance(task, stats.records)
        return

    def log_line(stats: IngestStats) -> None:
        nonlocal done
        before, done = done, done + stats.records
        if done // 10_000 != before // 10_000 or done == total:
            log.info("%s: %d/%d records", label, done, total)

    yield log_line


@click.command("ingest-jsonl")
@click.argument("files", nargs=-1, required=True, type=existing_file)
@click.option(
    "--batch-size",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Records per transaction.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_app
def ingest_jsonl(app: AppContext, files: tuple[Path, ...], batch_size: int, as_json: bool) -> None:
    """Ingest local metadata dumps: abstract-corpus JSON lines, or conference indexes.

    Each line of a corpus file holds `id, title, summary, authors, categories, comment,
    abs, pdf`; a line without `id` is identified by its title and authors. A `.json` file
    is a conference index named by venue and year (`ICLR2024.json`), as `catalogue enrich
    --from-jsonl` reads it. Every file is checked before anything is written: a malformed
    line is reported as FILE:LINE and nothing is stored. Re-ingesting the same files adds
    nothing.

    \b
    Example:
      vpt-tracker ingest-jsonl dumps/2025-03-18.jsonl dumps/2025-03-27.jsonl
      vpt-tracker ingest-jsonl conferences/ICLR2024.json conferences/CVPR2023.json
    """
    records: list[RawRecord] = []
    for path in files:
        records.extend(read_dump(path))
    engine = app.engine()
    # Under the pipeline's lock, as `fetch` and `papers split`: beside a run or a repair, an
    # identity index of this process's own would resolve papers the other changes meanwhile.
    with exclusive(engine, "pipeline"):
        stats = _ingest_locked(app, engine, files, records, batch_size)
    counts = stats.as_dict()
    if as_json:
        echo_json(counts)
    else:
        click.echo(
            f"{plural(counts['records'], 'record')} from {plural(len(files), 'file')}: "
            f"{plural(counts['new_papers'], 'new paper')}, "
            f"{counts['merged']} merged, {counts['duplicate_sightings']} already stored"
        )


def _ingest_locked(
    app: AppContext, engine: Engine, files: tuple[Path, ...], records: list[RawRecord], batch_size: int
) -> IngestStats:
    started = time.perf_counter()
    recover_interrupted(engine, datetime.now(UTC))  # a killed run's row said `running` for ever
    with transaction(engine) as session:
        run = RunRow(kind="ingest", counts={"files": [str(p) for p in files]})
        session.add(run)
        session.flush()
        run_id = run.id
    outcome, error = RunOutcome.FAILED, None
    stats = IngestStats()  # what the committed batches stored, also when a later one fails

    def committed(batch: IngestStats, shown: Callable[[IngestStats], None]) -> None:
        nonlocal stats
        stats += batch
        shown(batch)

    try:
        with _record_progress(len(records), "ingesting") as progress:
            keep_index_between_runs(app.settings.cache_dir)
            ingest_records(
                engine,
                records,
                run_id=run_id,
                batch_size=batch_size,
                progress=lambda batch: committed(batch, progress),
            )
        save_index(engine)  # the next nightly run starts from this index instead of rebuilding it
        outcome = RunOutcome.OK
    except (KeyboardInterrupt, Exception) as exc:  # a Ctrl-C: `failed`, and no error at all
        error = run_error(exc)
        raise
    finally:
        with transaction(engine) as session:
            row = session.get(RunRow, run_id)
            if row is not None:
                row.outcome = outcome.value
                row.finished_at = datetime.now(UTC)
                row.duration_s = time.perf_counter() - started
                row.counts = {**row.counts, "jsonl": stats.as_dict()}
                row.errors = {"jsonl": error} if error else {}
    return stats


def store_stats(app: AppContext) -> dict[str, Any]:
    with transaction(app.engine()) as session:
        papers = session.scalar(select(func.count()).select_from(PaperRow)) or 0
        sightings = session.scalar(select(func.count()).select_from(SightingRow)) or 0
        per_source = select(SightingRow.source, func.count()).group_by(SightingRow.source)
        by_source = {src: count for src, count in session.execute(per_source.order_by(SightingRow.source))}
        with_abstract = session.scalar(select(func.count()).where(PaperRow.abstract != "")) or 0
        with_arxiv = session.scalar(select(func.count()).where(PaperRow.arxiv_id.is_not(None))) or 0
        upgraded = session.scalar(select(func.count()).where(PaperRow.venue_upgraded_at.is_not(None))) or 0
        linked = session.scalar(select(func.count()).where(EntryRow.paper_id.is_not(None))) or 0
        cursors = session.scalar(select(func.count()).select_from(CursorRow)) or 0
    return {
        "papers": papers,
        "sightings": sightings,
        "by_source": by_source,
        "papers_with_abstract": with_abstract,
        "papers_with_arxiv_id": with_arxiv,
        "upgraded_to_venue": upgraded,
        "catalogue_entries_linked": linked,
        "cursors": cursors,
    }


@click.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_app
def stats_command(app: AppContext, as_json: bool) -> None:
    """Count papers, sightings per source, abstracts and venue upgrades in the store."""
    data = store_stats(app)
    if as_json:
        echo_json(data)
        return
    click.echo(
        f"papers: {data['papers']} ({data['papers_with_abstract']} with abstract, "
        f"{data['papers_with_arxiv_id']} with arXiv id, {data['upgraded_to_venue']} upgraded to a venue)"
    )
    click.echo(f"sightings: {data['sightings']}")
    for source, count in data["by_source"].items():
        click.echo(f"  {source}: {count}")
    click.echo(f"catalogue entries linked to papers: {data['catalogue_entries_linked']}")
    click.echo(f"cursors: {data['cursors']}")


@contextmanager
def _arxiv_lookup(app: AppContext, wanted: bool) -> Iterator[ArxivLookup | None]:
    """The arXiv API for enrichment (None when not `wanted`); its failure is one `Error:` line.

    An outage after all retries, or an error feed, used to end `catalogue enrich` in a
    traceback. Look-ups happen before anything is written, so nothing is stored then.
    """
    if not wanted:
        yield None
        return
    from vpt_tracker.http import HttpClient
    from vpt_tracker.sources.arxiv_api import ArxivApiSource
    from vpt_tracker.sources.base import SourceError

    client = HttpClient(app.settings.http)
    try:
        yield ArxivApiSource(app.settings.sources.arxiv_api, client)
    except SourceError as exc:
        raise UserError(f"arXiv look-up failed: {exc}", exit_code=1) from None
    finally:
        client.close()


def _say(message: str) -> None:
    """A step of a slow command: on the terminal as is, in the log otherwise."""
    if sys.stderr.isatty():
        click.echo(message, err=True)
    else:
        log.info("%s", message)


#: Matches whose own paper was merged into their entry's (singular, plural).
_JOINED = ("match merged into its entry's paper", "matches merged into their entries' papers")
#: Papers an entry left for another, made of its own sighting alone, merged into the new one.
_REJOINED = ("paper an entry left merged into its new one", "papers entries left merged into their new ones")
#: Papers an entry left that hold more: not merged, each warned with its `papers merge` line.
_LEFT = ("paper an entry left holds more (warned above)", "papers entries left hold more (warned above)")


@click.command("enrich")
@click.argument("name")
@click.option(
    "--from-jsonl",
    "dumps",
    multiple=True,
    type=existing_file,
    metavar="FILE",
    help="Local dump: a corpus .jsonl or a conference index .json (repeatable).",
)
@click.option(
    "--arxiv/--no-arxiv", default=True, show_default=True, help="Look up on arXiv what the dumps do not have."
)
@click.option(
    "--max-title-searches",
    default=50,
    show_default=True,
    type=click.IntRange(0),
    help="At most this many arXiv title searches (one request each, 3 s apart).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_app
def enrich(
    app: AppContext, name: str, dumps: tuple[Path, ...], arxiv: bool, max_title_searches: int, as_json: bool
) -> None:
    """Link a catalogue's entries to papers and fill in their abstracts.

    Entries are matched by arXiv id, then by normalised title: first in the local dumps,
    then on arXiv (id_list batches, then title searches). The entry's venue and year, from
    the curated list, are kept. Entries already linked to a paper with an abstract are left
    alone, so a second run only retries the rest. A paper an entry leaves for another, made of
    its own sighting alone, is merged into the new one; one that holds more is named with the
    `papers merge` line that would join them.

    \b
    Examples:
      vpt-tracker catalogue enrich awesome-vpt --from-jsonl corpus/2025-03-18.jsonl --from-jsonl CVPR2022.json
      vpt-tracker catalogue enrich awesome-vpt --no-arxiv --from-jsonl ICLR2024.json
    """
    local = LocalIndex.from_files(dumps) if dumps else None
    if local is None and not arxiv:
        raise UserError("nothing to enrich from: give --from-jsonl FILE or allow --arxiv")
    engine = app.engine()
    with exclusive(engine, "pipeline"), _arxiv_lookup(app, arxiv) as lookup:  # it ingests: see ingest-jsonl
        stats = enrich_catalogue(
            engine,
            name,
            local=local,
            arxiv=lookup,
            max_title_searches=max_title_searches,
            progress=_say,
        )
    if as_json:
        echo_json(stats.as_dict())
        return
    click.echo(
        f"{name}: {plural(stats.entries, 'entry', 'entries')}, {stats.complete} already complete; "
        f"{stats.matched_local} matched in dumps, {stats.matched_arxiv} on arXiv, "
        f"{stats.unmatched} without abstract; {stats.linked} linked, "
        f"{plural(stats.ingest.new_papers, 'new paper')}"
        + (f"; {plural(stats.joined, *_JOINED)}" if stats.joined else "")
        + (f"; {plural(stats.rejoined, *_REJOINED)}" if stats.rejoined else "")
        + (f"; {plural(len(stats.left_behind), *_LEFT)}" if stats.left_behind else "")
        + (f"; {stats.wrong_links} linking another paper (warned above)" if stats.wrong_links else "")
    )


def register(main: click.Group) -> None:
    main.add_command(ingest_jsonl)
    main.add_command(stats_command)
    catalogue = main.commands.get("catalogue")
    if not isinstance(catalogue, click.Group):
        raise RuntimeError("vpt_tracker.cli.ingest must be listed after vpt_tracker.cli.catalogue")
    catalogue.add_command(enrich)
