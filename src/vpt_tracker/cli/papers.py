"""`papers show`, `papers split`, `papers merge` and `papers check`: repairing identity."""

from __future__ import annotations

import click

from vpt_tracker.cli.context import ROW_ID, AppContext, echo_json, pass_app
from vpt_tracker.identity import Repair, check, describe, merge, rebuild, split, stale_keys
from vpt_tracker.ingest import KEY_FIELDS, keep_index_between_runs
from vpt_tracker.wording import plural, word_for

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group()
def papers() -> None:
    """Inspect papers and repair their identity: split one in two, merge two into one,
    rebuild one from its sightings, and check for what earlier versions got wrong."""


@papers.command("show")
@click.argument("paper_id", type=ROW_ID)
@_JSON
@pass_app
def show_command(app: AppContext, paper_id: int, as_json: bool) -> None:
    """Show paper PAPER_ID: its keys, its sightings (with the ids `split` takes), the
    catalogue entries linked to it, its candidates and the catalogues that owe it a score."""
    data = describe(app.engine(), paper_id)
    if as_json:
        echo_json(data)
        return
    click.echo(f"paper {data['id']}: {data['title']}")
    venue = _where(data["venue"], data["year"])
    if data["venue_upgraded_at"]:
        venue += (
            f" (was {data['previous_venue'] or 'a preprint'}, upgraded {data['venue_upgraded_at']:%Y-%m-%d})"
        )
    click.echo(f"  venue: {venue or '-'}")
    keys = ", ".join(f"{name} {data[name]}" for name in KEY_FIELDS if data[name])
    click.echo(f"  keys: {keys or '-'}")
    click.echo(f"  sightings ({len(data['sightings'])}):")
    for s in data["sightings"]:
        where = _where(s["venue"], s["year"])
        click.echo(
            f"    {s['id']}  {s['source']}  {s['fetched_at']:%Y-%m-%d}  {s['title']}"
            + (f"  [{where}]" if where else "")
        )
    for entry in data["entries"]:
        click.echo(f"  entry {entry['id']} of {entry['catalogue']}: {entry['title']}")
    for candidate in data["candidates"]:
        click.echo(f"  candidate {candidate['id']} for {candidate['catalogue']}: {candidate['status']}")
    if data["owed_by"]:
        click.echo(f"  owed a score by: {', '.join(data['owed_by'])}")


def _where(venue: str | None, year: int | None) -> str:
    """ "CVPR 2024" from a venue and a year, without the year twice ("ICLR 2025 2025")."""
    shown = venue or ""
    if year is not None and str(year) not in shown:
        shown = f"{shown} {year}".strip()
    return shown


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids)) if ids else "none"


def _named(ids: list[int], singular: str) -> str:
    """`sighting 7` or `sightings 7, 8`: the word agrees with how many ids follow it."""
    return f"{word_for(len(ids), singular)} {_ids(ids)}"


@papers.command("split")
@click.argument("paper_id", type=ROW_ID)
@click.option(
    "--sighting",
    "sighting_ids",
    type=ROW_ID,
    multiple=True,
    required=True,
    metavar="SIGHTING_ID",
    help="A sighting to move to the new paper (repeatable; see `papers show`).",
)
@_JSON
@pass_app
def split_command(app: AppContext, paper_id: int, sighting_ids: tuple[int, ...], as_json: bool) -> None:
    """Move sightings of PAPER_ID out into a new paper.

    Both papers are rebuilt from their sightings as ingestion builds papers (title,
    abstract, keys, venue and venue upgrade). A catalogue entry follows its own sighting,
    or the arXiv id it lists; the new paper is owed a score by every configured catalogue,
    except those that rejected PAPER_ID, which keep it rejected. One transaction.

    \b
    Example:
      vpt-tracker papers show 812
      vpt-tracker papers split 812 --sighting 3051 --sighting 3077
    """
    engine = app.engine()
    keep_index_between_runs(app.settings.cache_dir)  # so that its saved index is the one discarded
    repair = split(engine, paper_id, sighting_ids, catalogues=[c.name for c in app.settings.catalogues])
    _report(repair, as_json)


@papers.command("merge")
@click.argument("keep_id", type=ROW_ID)
@click.argument("other_id", type=ROW_ID)
@_JSON
@pass_app
def merge_command(app: AppContext, keep_id: int, other_id: int, as_json: bool) -> None:
    """Merge paper OTHER_ID into KEEP_ID; OTHER_ID is deleted.

    The merged paper is rebuilt from the sightings of both. Entries, candidates, decisions
    and what the scoring backlog owes move to KEEP_ID; of two candidates for one catalogue
    the one furthest along stays (published, accepted, rejected, deferred, pending), with
    the other's decisions. Refused when the two hold different keys of one kind (two arXiv
    ids). One transaction.

    \b
    Example:
      vpt-tracker papers merge 812 977
    """
    engine = app.engine()
    keep_index_between_runs(app.settings.cache_dir)
    _report(merge(engine, keep_id, other_id), as_json)


@papers.command("rebuild")
@click.argument("paper_id", type=ROW_ID)
@_JSON
@pass_app
def rebuild_command(app: AppContext, paper_id: int, as_json: bool) -> None:
    """Rebuild paper PAPER_ID from its own sightings, as ingestion builds papers.

    For a paper whose key an earlier version stored in a form ingestion no longer makes (a
    multi-DOI field kept whole; `papers check` lists them). Nothing moves. One transaction.

    \b
    Example:
      vpt-tracker papers rebuild 812
    """
    engine = app.engine()
    keep_index_between_runs(app.settings.cache_dir)
    _report(rebuild(engine, paper_id), as_json)


def _report(repair: Repair, as_json: bool) -> None:
    if as_json:
        echo_json(repair.as_dict())
        return
    paper, other = repair.paper_id, repair.other_id
    if repair.action == "rebuild":
        click.echo(f"rebuilt paper {paper} ({repair.titles[paper]}) from its sightings")
        for column, (before, after) in repair.changed.items():
            click.echo(f"  {column}: {before} -> {after}")
        if not repair.changed:
            click.echo("  nothing changed")
        return
    assert other is not None
    if repair.action == "split":
        click.echo(
            f"split paper {paper}: {_named(repair.sightings_moved, 'sighting')} "
            f"{word_for(len(repair.sightings_moved), 'is', 'are')} now paper {other} "
            f"({repair.titles[other]}); paper {paper} is {repair.titles[paper]}"
        )
    else:
        click.echo(
            f"merged paper {other} into {paper} ({repair.titles[paper]}): "
            f"{_named(repair.sightings_moved, 'sighting')} moved"
        )
    click.echo(
        f"  entries moved: {_ids(repair.entries_moved)}; candidates moved: {_ids(repair.candidates_moved)}"
    )
    if repair.candidates_dropped:
        click.echo(
            f"  candidates dropped: {_ids(repair.candidates_dropped)} "
            f"({plural(repair.decisions_moved, 'decision')} kept on the candidate that stays)"
        )
    if repair.candidates_copied:
        click.echo(f"  rejections kept for the new paper: {_named(repair.candidates_copied, 'candidate')}")
    if repair.owed_by:
        click.echo(f"  owed a score by: {', '.join(repair.owed_by)}")


@papers.command("check")
@_JSON
@pass_app
def check_command(app: AppContext, as_json: bool) -> None:
    """List what earlier versions got wrong, with the command that repairs each.

    Papers merged from sightings whose titles differ in a number ("Foo v2" and "Foo v3"),
    which ingestion no longer merges: their sightings grouped by the numbers of their
    titles, and the `papers split` that takes the later groups out. Papers whose stored key
    is not what ingestion makes of it now (a multi-DOI field kept whole): with `papers
    merge` when a duplicate holds the key since, else `papers rebuild`. Exit code 0 either way.
    """
    engine = app.engine()
    suspects, stale = check(engine), stale_keys(engine)
    if as_json:
        echo_json(
            {
                "titles_differ_in_a_number": [suspect.as_dict() for suspect in suspects],
                "stale_keys": [key.as_dict() for key in stale],
            }
        )
        return
    for suspect in suspects:
        click.echo(f"paper {suspect.paper_id}: {suspect.title}")
        for group in suspect.groups:
            numbers = " ".join(group["numbers"]) or "(none)"
            click.echo(f"  numbers {numbers}: {_named(group['sighting_ids'], 'sighting')}  {group['title']}")
        click.echo(f"  {suspect.split_command()}")
    for key in stale:
        click.echo(f"paper {key.paper_id}: {key.title}")
        held = f" (held by paper {key.held_by})" if key.held_by is not None else ""
        click.echo(f"  {key.key} {key.stored!r} is now {key.current!r}{held}")
        click.echo(f"  {key.fix_command()}")
    click.echo(
        f"{plural(len(suspects), 'paper holds', 'papers hold')} sightings whose titles differ in a number; "
        f"{plural(len(stale), 'key is', 'keys are')} stored in an old form"
    )


def register(main: click.Group) -> None:
    main.add_command(papers)
