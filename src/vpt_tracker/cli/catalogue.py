"""`vpt-tracker catalogue`: import, render, stats, check and remove curated README lists."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from vpt_tracker.catalogue.markdown import lint, parse, read_markdown
from vpt_tracker.catalogue.removal import plan_removal, refusal, remove_catalogue
from vpt_tracker.catalogue.service import (
    ImportResult,
    catalogue_stats,
    configure_catalogue,
    import_catalogue,
    render_catalogue,
)
from vpt_tracker.classify.presets import Presets, presets_dir
from vpt_tracker.cli.context import OUTPUT_PATH, AppContext, echo_json, pass_app, write_output
from vpt_tracker.enqueue import trained_dir
from vpt_tracker.errors import UserError
from vpt_tracker.locks import exclusive, exclusive_folder
from vpt_tracker.publish.upstream import rebase_catalogue
from vpt_tracker.store import session_factory, transaction
from vpt_tracker.store.tables import CatalogueRow
from vpt_tracker.wording import plural

log = logging.getLogger(__name__)


@click.group("catalogue")
def catalogue_group() -> None:
    """Import, render, inspect, lint and remove curated README lists."""


@catalogue_group.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Catalogue name to store the list under.")
@click.option(
    "--preset",
    help="Taxonomy preset: a shipped one (awesome-vpt, prompt-adaptation, generalizable-vlm) or "
    "one of your own, PRESET.toml in the presets_dir folder of the config.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Take in a new README for the catalogue of this name; its reviews and vpt-tracker's changes stay.",
)
@click.option("--readme-path", help="Path of the README inside its repository (default: the file name).")
@click.option("--github-repo", metavar="OWNER/NAME", help="GitHub repository the list lives in.")
@pass_app
def import_command(
    app: AppContext,
    file: Path,
    name: str,
    preset: str | None,
    replace: bool,
    readme_path: str | None,
    github_repo: str | None,
) -> None:
    """Parse a README FILE and store its entries, labels and text (one transaction).

    \b
    Example:
      vpt-tracker catalogue import README.md --name awesome-vpt --preset awesome-vpt
    """
    text = read_markdown(file)
    configured = app.settings.catalogue(name)  # [[catalogues]] in the config fills what is not given
    if configured is not None:
        preset = preset or configured.preset
        github_repo = github_repo or configured.github_repo
        if readme_path is None and configured.readme is not None:
            readme_path = str(configured.readme)
    engine = app.engine()
    if replace:
        with transaction(engine) as session:
            if session.scalar(select(CatalogueRow.id).where(CatalogueRow.name == name)) is not None:
                summary, result = _take_in(
                    session, name, text, preset, readme_path, github_repo, app.settings.presets
                )
                click.echo(summary)
                _warn(result)
                return
    result = import_catalogue(
        engine,
        name,
        text,
        preset=preset,
        readme_path=readme_path if readme_path is not None else file.name,
        github_repo=github_repo,
        replace=replace,
        presets=app.settings.presets,
    )
    click.echo(result.summary())
    _warn(result)


def _warn(result: ImportResult) -> None:
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


def _take_in(
    session: Session,
    name: str,
    text: str,
    preset: str | None,
    readme_path: str | None,
    github_repo: str | None,
    presets: Presets,
) -> tuple[str, ImportResult]:
    """A new README for an imported catalogue: its settings as given (the others kept), the
    README as the new base, and vpt-tracker's own changes replayed on it, as `publish` does
    for a README edited upstream. Candidates, review decisions, pull requests and the
    entries' links to papers stay; only deleting the catalogue would lose them."""
    catalogue = configure_catalogue(
        session, name, preset=preset, readme_path=readme_path, github_repo=github_repo, presets=presets
    )
    rebase = rebase_catalogue(session, name, text, None, presets=presets)
    imported = sum(1 for row in catalogue.entries if row.state != "added")
    preset_obj = presets.load(catalogue.preset) if catalogue.preset else None
    result = ImportResult.of(catalogue.id, name, parse(text), imported, True, preset_obj)
    return f"{result.summary()}; {rebase.summary()}", result


@catalogue_group.command("render")
@click.argument("name")
@click.option("--output", type=OUTPUT_PATH, help="Write here, not stdout (- is stdout).")
@pass_app
def render_command(app: AppContext, name: str, output: Path | None) -> None:
    """Write catalogue NAME back as markdown: the imported bytes plus vpt-tracker's changes."""
    with session_factory(app.engine())() as session:
        text = render_catalogue(session, name)
    with write_output(output) as out:
        out.write(text)


@catalogue_group.command("stats")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def stats_command(app: AppContext, name: str, as_json: bool) -> None:
    """Entries per section and label, venues, years, and missing paper/code links."""
    with session_factory(app.engine())() as session:
        stats = catalogue_stats(session, name)
    if as_json:
        echo_json(stats)
        return
    entries = plural(stats["entries"], "entry", "entries")
    click.echo(f"{stats['catalogue']}: {entries} (preset: {stats['preset'] or 'none'})")
    for title, key in (
        ("Sections", "sections"),
        ("Labels", "labels"),
        ("Venues", "venues"),
        ("Years", "years"),
    ):
        click.echo(f"{title}:")
        for item, count in stats[key].items():
            click.echo(f"  {count:5d}  {item}")
    click.echo(
        f"Missing links: {stats['without_paper_link']} without a paper link, "
        f"{stats['without_code_link']} without a code link, {stats['without_any_link']} with neither"
    )


@catalogue_group.command("check")
@click.argument("file", type=click.Path(path_type=Path))
def check_command(file: Path) -> None:
    """Lint a README without importing it. Exit 1 when it finds problems, 0 when clean.

    Prints FILE:LINE: KIND: message, where KIND is unparsed (looks like an entry but does
    not parse), duplicate (the same paper twice: same normalised title, or same arXiv id
    under a title that agrees), same-link (an arXiv link that an entry of another title
    has too) or no-link (neither a paper nor a code link, in a list that links its papers).
    """
    text = read_markdown(file)
    problems = lint(text)
    for problem in problems:
        click.echo(f"{file}:{problem.line}: {problem.kind}: {problem.message}")
    entries = len(parse(text).entries)
    click.echo(f"{plural(entries, 'entry', 'entries')}, {plural(len(problems), 'problem')}", err=True)
    if problems:
        raise SystemExit(1)


@catalogue_group.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--force",
    is_flag=True,
    help="Remove it even with history: reviews, pull requests, publications, vpt-tracker's own entries.",
)
@pass_app
def remove_command(app: AppContext, name: str, yes: bool, force: bool) -> None:
    """Take catalogue NAME out of the store, with its entries, candidates, review decisions,
    pull requests and publications, and its own trained model (one transaction).

    Papers and sightings stay. A catalogue with history (review decisions, candidates no
    longer pending, pull requests, publications, entries vpt-tracker added or upgraded) is
    removed only with --force.

    \b
    Example:
      vpt-tracker catalogue remove awesome-vtp
    """
    engine = app.engine()
    with session_factory(engine)() as session:
        plan = plan_removal(session, name)
    history = plan.history()
    if history and not force:
        raise UserError(refusal(name, history))
    model = _own_model_folder(app, name)
    click.echo(f"removing catalogue {name!r} takes away:")
    for line in plan.lines():
        click.echo(f"  {line}")
    if model is not None:
        click.echo(f"  trained model folder: {model}")
    if not yes:
        click.confirm(f"remove catalogue {name!r}?", abort=True)
    # No nightly run scoring into it and no publish of it while it goes.
    with exclusive(engine, "pipeline"), exclusive(engine, f"publish-{name}"):
        remove_catalogue(engine, name, force=force, expected=plan)
    click.echo(f"removed catalogue {name!r}")
    for pull in plan.open_pull_requests:  # --force: GitHub still has it
        click.echo(f"note: pull request {pull.describe()} is still on GitHub: close it there")
    if model is not None:
        _remove_model_folder(model)
    configured = app.settings.catalogue(name)
    if configured is not None:
        click.echo(
            f"note: {name!r} is still a [[catalogues]] entry of the config: the nightly run and the "
            f"digest report it as not imported until it is taken out there (or imported again: "
            f"`{configured.import_command()}`)"
        )


def _own_model_folder(app: AppContext, name: str) -> Path | None:
    """The catalogue's own trained model folder (`classify train`'s), if there is one; never
    a preset's shipped default (a classifiers_dir set to the checkout's `classifiers/` holds
    those under the preset names)."""
    folder = trained_dir(app.settings, name)
    if not folder.is_dir():
        return None
    if folder.resolve().parent == presets_dir().resolve():
        return None
    return folder


def _remove_model_folder(folder: Path) -> None:
    """Delete a removed catalogue's model folder after the commit: a crash before it leaves
    the folder (said in README Limits), never a catalogue without its model. A `classify
    train` saving into it is waited for by nobody: the folder is then left, with a warning."""
    try:
        with exclusive_folder(folder, f"train-{folder.name}"):
            shutil.rmtree(folder)
    except (UserError, OSError) as exc:
        click.echo(f"warning: the model folder {folder} stays ({exc}); delete it by hand", err=True)
    else:
        click.echo(f"removed its trained model folder {folder}")


def register(main: click.Group) -> None:
    main.add_command(catalogue_group)
