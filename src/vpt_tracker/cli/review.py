"""`review`: the terminal app, and `review list|accept|reject|defer|relabel|undo|bulk-reject` for scripts."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from vpt_tracker.cli.context import ROW_COUNT, ROW_ID, SCORE, AppContext, echo_json, pass_app
from vpt_tracker.errors import UserError
from vpt_tracker.models import CandidateStatus
from vpt_tracker.review.queue import Filter, QueueItem, ReviewQueue, resolve_reviewer
from vpt_tracker.wording import plural, shortened

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)
STATUSES = [s.value for s in CandidateStatus]


def _scope_options(func: F) -> F:
    """`--catalogue` and `--reviewer`, accepted on the group and on every subcommand."""
    func = click.option(
        "--reviewer", metavar="NAME", help="Who is reviewing (default: config review.reviewer, else login)."
    )(func)
    func = click.option(
        "--catalogue", "-c", metavar="NAME", help="Only this catalogue's candidates (default: all)."
    )(func)
    return func


def _queue(ctx: click.Context, app: AppContext, catalogue: str | None, reviewer: str | None) -> ReviewQueue:
    parent = ctx.parent.params if ctx.parent is not None else {}
    catalogue = catalogue or parent.get("catalogue")
    if reviewer is None:  # `--reviewer ""` is a name given (and refused as blank), not none
        reviewer = parent.get("reviewer")
    reviewer = resolve_reviewer(app.settings.review.reviewer, reviewer)
    return ReviewQueue(
        app.engine(), reviewer, catalogue, order=app.settings.review.order, presets=app.settings.presets
    )


def _has_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on a terminal; otherwise a log line per chunk (shown with -v)."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda done, _total: bar.update(task, completed=done)
        return
    yield lambda done, all_: log.info("%s: %d/%d", label, done, all_)


def _labels(values: tuple[str, ...]) -> list[str]:
    """`--labels a,b --labels c` → [a, b, c]."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _line(item: QueueItem, with_catalogue: bool = False) -> str:
    """One `review list` line; `with_catalogue` names the candidate's catalogue after its
    status (a listing of every catalogue shows a paper queued for two lists twice, and
    without it the two lines differed only by id)."""
    labels = ", ".join(item.final_labels if item.final_labels is not None else item.proposed_labels)
    mark = " [b2n]" if item.base_to_novel_flag else ""
    catalogue = f"{item.catalogue}  " if with_catalogue else ""
    title = shortened(item.title, 70)
    return (
        f"{item.candidate_id:>6}  {item.relevance:4.2f}  {item.status:<9} {catalogue}{title}"
        f"  ({item.venue_year or '?'}){mark}  [{labels}]"
    )


@click.group(invoke_without_command=True)
@_scope_options
@click.option(
    "--deferred", is_flag=True, help="Open the app on the deferred candidates instead of pending ones."
)
@pass_app
@click.pass_context
def review(
    ctx: click.Context, app: AppContext, catalogue: str | None, reviewer: str | None, deferred: bool
) -> None:
    """Review pending candidates: with no subcommand, open the terminal app.

    \b
    Examples:
      vpt-tracker review --catalogue awesome-vpt
      vpt-tracker review list --catalogue awesome-vpt --json
      vpt-tracker review accept 42 --labels learnable,token
      vpt-tracker review reject 43 --reason off-topic
      vpt-tracker review undo
    """
    if ctx.invoked_subcommand is not None:
        return
    from vpt_tracker.review.app import ReviewApp, store_explainer

    if not _has_terminal():
        raise UserError(
            "the review app needs a terminal; scripts can use `vpt-tracker review list|accept|reject`"
        )
    queue = _queue(ctx, app, catalogue, reviewer)
    settings = app.settings.review
    status = CandidateStatus.DEFERRED.value if deferred else CandidateStatus.PENDING.value
    explainer = store_explainer(queue.engine, app.settings)
    result = ReviewApp(
        queue, keys=settings.keys, reject_reasons=settings.reject_reasons, status=status, explainer=explainer
    ).run()
    if result is not None:
        click.echo(result.render())


@review.command("list")
@_scope_options
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Status to show (default: pending).",
)
@click.option(
    "--filter", "filter_text", metavar="TEXT", help="Words, label:KEY, score>=X / score<X, b2n:yes / b2n:no."
)
@click.option("--limit", type=ROW_COUNT, default=50, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@pass_app
@click.pass_context
def list_command(
    ctx: click.Context,
    app: AppContext,
    catalogue: str | None,
    reviewer: str | None,
    statuses: tuple[str, ...],
    filter_text: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List candidates in queue order (id, score, status, title, venue, labels)."""
    queue = _queue(ctx, app, catalogue, reviewer)
    status = list(statuses) or [CandidateStatus.PENDING.value]
    chosen = Filter.parse(filter_text) if filter_text else None
    if chosen is not None:
        queue.check_filter(chosen)
    items = queue.listing(status=status, filter=chosen, limit=limit)
    if as_json:
        echo_json([item.to_json() for item in items])
        return
    total = queue.count(status=status, filter=chosen)
    for item in items:
        click.echo(_line(item, with_catalogue=queue.catalogue is None))
    click.echo(f"{len(items)} of {total} {'/'.join(status)} shown", err=True)


@review.command()
@_scope_options
@click.argument("candidate_id", type=ROW_ID)
@click.option(
    "--labels",
    multiple=True,
    metavar="A,B",
    help="Final labels (default: those of a `review relabel`, else the proposed ones).",
)
@pass_app
@click.pass_context
def accept(
    ctx: click.Context,
    app: AppContext,
    catalogue: str | None,
    reviewer: str | None,
    candidate_id: int,
    labels: tuple[str, ...],
) -> None:
    """Accept a candidate with its final labels.

    Warns (without refusing) when the list has no section for those labels: `publish` would
    leave the paper out until they change (`review relabel`).
    """
    queue = _queue(ctx, app, catalogue, reviewer)
    item = queue.accept(candidate_id, _labels(labels) if labels else None)
    click.echo(f"accepted {item.candidate_id}: {item.title} [{', '.join(item.final_labels or [])}]")
    _warn_if_unplaceable(queue, item)


def _warn_if_unplaceable(queue: ReviewQueue, item: QueueItem) -> None:
    problem = queue.placement_problem(item.candidate_id, item.final_labels or [])
    if problem:
        click.echo(
            f"warning: {problem}; change them with "
            f"`vpt-tracker review relabel {item.candidate_id} --labels ...`",
            err=True,
        )


@review.command()
@_scope_options
@click.argument("candidate_id", type=ROW_ID)
@click.option("--reason", required=True, help="Why: one of review.reject_reasons, or free text.")
@pass_app
@click.pass_context
def reject(
    ctx: click.Context,
    app: AppContext,
    catalogue: str | None,
    reviewer: str | None,
    candidate_id: int,
    reason: str,
) -> None:
    """Reject a candidate, with a reason."""
    item = _queue(ctx, app, catalogue, reviewer).reject(candidate_id, reason)
    click.echo(f"rejected {item.candidate_id}: {item.title} ({item.reason})")


@review.command()
@_scope_options
@click.argument("candidate_id", type=ROW_ID)
@click.option("--reason", help="A note for later (optional).")
@pass_app
@click.pass_context
def defer(
    ctx: click.Context,
    app: AppContext,
    catalogue: str | None,
    reviewer: str | None,
    candidate_id: int,
    reason: str | None,
) -> None:
    """Put a candidate aside; it stays open (see `review list --status deferred`)."""
    item = _queue(ctx, app, catalogue, reviewer).defer(candidate_id, reason)
    click.echo(f"deferred {item.candidate_id}: {item.title}")


@review.command()
@_scope_options
@click.argument("candidate_id", type=ROW_ID)
@click.option("--labels", multiple=True, required=True, metavar="A,B", help="The new final labels.")
@pass_app
@click.pass_context
def relabel(
    ctx: click.Context,
    app: AppContext,
    catalogue: str | None,
    reviewer: str | None,
    candidate_id: int,
    labels: tuple[str, ...],
) -> None:
    """Change the final labels of an open or accepted candidate."""
    queue = _queue(ctx, app, catalogue, reviewer)
    item = queue.relabel(candidate_id, _labels(labels))
    click.echo(f"relabelled {item.candidate_id}: [{', '.join(item.final_labels or [])}]")
    if item.status == CandidateStatus.ACCEPTED.value:
        _warn_if_unplaceable(queue, item)


@review.command()
@_scope_options
@pass_app
@click.pass_context
def undo(ctx: click.Context, app: AppContext, catalogue: str | None, reviewer: str | None) -> None:
    """Undo your last decision (a bulk reject as a whole)."""
    queue = _queue(ctx, app, catalogue, reviewer)
    items = queue.undo()
    for item in items:
        if queue.last_undone == "relabel":  # the status never changed: say what did
            click.echo(f"undone: relabel of {item.candidate_id}, {item.labels_restored()}: {item.title}")
        else:
            click.echo(f"undone: {item.candidate_id} is {item.status} again: {item.title}")


@review.command("bulk-reject")
@_scope_options
@click.option("--below", type=SCORE, required=True, help="Reject pending ones scoring below this.")
@click.option("--reason", default="low score", show_default=True, help="Reason recorded on each.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
@click.pass_context
def bulk_reject(
    ctx: click.Context,
    app: AppContext,
    catalogue: str | None,
    reviewer: str | None,
    below: float,
    reason: str,
    yes: bool,
) -> None:
    """Reject every pending candidate below a score, as one batch that `review undo` reverts."""
    queue = _queue(ctx, app, catalogue, reviewer)
    counts = queue.count_below(below)
    count = sum(counts.values())
    if count and not yes:
        click.confirm(
            f"reject {plural(count, 'pending candidate')} scoring below {below:g} "
            f"in {_where(queue, counts)}?",
            abort=True,
        )
    with _progress(count, "rejecting") as advance:
        result = queue.bulk_reject_below(below, reason, progress=advance)
    if not result.rejected:
        # No batch was recorded: "`review undo` reverts them" sent the maintainer to an undo
        # that reverts their decision before, an earlier batch of hundreds say.
        scope = queue.catalogue or "any catalogue"
        click.echo(f"no pending candidate scores below {below:g} in {scope}; nothing was rejected")
        return
    where = f" in {_where(queue, result.by_catalogue)}"
    them = "it" if result.rejected == 1 else "them"
    click.echo(
        f"rejected {plural(result.rejected, 'candidate')} below {below:g} ({reason}){where}; "
        f"`review undo` reverts {them}"
    )


def _where(queue: ReviewQueue, counts: dict[str, int]) -> str:
    """The catalogues a bulk action touches: a batch without --catalogue spans every one."""
    if queue.catalogue is not None:
        return queue.catalogue
    return "every catalogue: " + ", ".join(f"{name} {count}" for name, count in counts.items())


def register(main: click.Group) -> None:
    main.add_command(review)
