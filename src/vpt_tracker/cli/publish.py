"""`vpt-tracker publish NAME [--dry-run]`: accepted papers become a pull request on the list."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from vpt_tracker.cli.context import AppContext, pass_app
from vpt_tracker.publish.publisher import STEPS, Plan, Progress, Publisher, dry_run
from vpt_tracker.wording import plural


@contextmanager
def _progress() -> Iterator[Progress | None]:
    """A rich progress bar over the publish steps on a terminal; plain logs otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(
        TextColumn("publish: {task.description}"), BarColumn(), console=Console(stderr=True), transient=True
    ) as bar:
        task = bar.add_task("start", total=len(STEPS))
        seen: list[str] = []

        def step(name: str) -> None:
            if seen:
                bar.advance(task)
            seen.append(name)
            bar.update(task, description=name)

        yield step


def _echo_skipped(plan: Plan) -> None:
    for skipped in plan.skipped:
        what = f"candidate {skipped.candidate_id} ({skipped.title})"
        click.echo(f"Warning: {what} not promoted: {skipped.reason}", err=True)
    for warning in plan.warnings:
        click.echo(f"Warning: {warning}", err=True)


@click.command("publish")
@click.argument("name")
@click.option(
    "--dry-run", "dry_run_", is_flag=True, help="Print the README diff and the PR text; change nothing."
)
@pass_app
def publish_command(app: AppContext, name: str, dry_run_: bool) -> None:
    """Publish catalogue NAME: promote accepted candidates, push the README, open or update the PR.

    Exit 0 published (or nothing to publish), 1 GitHub or git refused or could not be reached,
    or the README changed upstream (taken in: check with --dry-run, then publish again),
    2 bad config, token or catalogue, 69 the database is unavailable, 75 another publish of
    NAME is running, 130 interrupted. After a failure, a rerun picks up where it stopped.

    \b
    Examples:
      vpt-tracker publish awesome-vpt --dry-run
      VPT_GITHUB__TOKEN=ghp_... vpt-tracker publish awesome-vpt
    """
    if dry_run_:
        plan = dry_run(app.engine(), name, app.settings.presets)
        _echo_skipped(plan)
        if not plan.changes:
            click.echo(f"nothing to publish for {name!r}")
            return
        click.echo(plan.diff, nl=False)
        click.echo(f"\n--- pull request ---\n{plan.title}\n\n{plan.body}", nl=False)
        return
    publisher = Publisher(app.engine(), app.settings, name)
    with _progress() as progress:
        if progress is not None:
            publisher.progress = progress
        outcome = publisher.run()
    _echo_skipped(outcome.plan)
    if outcome.rebase is not None:
        click.echo(f"took in upstream's merged README: {outcome.rebase.summary()}")
    if outcome.closed is not None:
        click.echo(
            f"closed pull request #{outcome.closed.number}: nothing is left to propose "
            "(its papers were rejected, or upstream has them now)"
        )
        return
    if outcome.pull is None:
        click.echo(f"nothing to publish for {name!r}")
        return
    verb = "opened" if outcome.created else "updated"
    changes = len(outcome.plan.changes)
    click.echo(
        f"{verb} pull request #{outcome.pull.number} ({plural(changes, 'change')}, "
        f"{plural(outcome.published, 'candidate')} marked published): {outcome.pull.url}"
    )


def register(main: click.Group) -> None:
    main.add_command(publish_command)
