"""`vpt-tracker classify`: train, score, evaluate, replay and explain catalogue models."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from vpt_tracker.catalogue.markdown import read_markdown
from vpt_tracker.classify.data import Example, example_from_json
from vpt_tracker.classify.model import MIN_NOVEL_EXAMPLES, Explanation
from vpt_tracker.cli.context import (
    OUTPUT_PATH,
    ROW_ID,
    SEED,
    AppContext,
    echo_json,
    pass_app,
    to_stdout,
    write_output,
)
from vpt_tracker.dumps import JsonNumber, iter_jsonl
from vpt_tracker.enqueue import (
    NOVEL_REASON,
    evaluate_catalogue,
    explain,
    load_model,
    replay_catalogue,
    rescore_catalogue,
    rules_for,
    score_and_enqueue,
    train_catalogue,
)
from vpt_tracker.errors import UserError
from vpt_tracker.locks import exclusive
from vpt_tracker.wording import plural

log = logging.getLogger(__name__)
SCORE_CHUNK = 40_000  # papers per progress step; each is scored in batches of 10,000


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal; otherwise a log line per chunk."""
    if not sys.stderr.isatty():
        done = 0

        def log_step(count: int) -> None:
            nonlocal done
            done += count
            log.info("%s: %d/%d", label, done, total)

        yield log_step
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda count: progress.advance(task, count)


def _read_papers(path: Path) -> list[tuple[Any, Example]]:
    """(the line's `id` as written, the paper) for each line of a papers.jsonl file: `score`
    gives each id back as it came (7, not "7"), so that its output joins on the id."""
    if not path.is_file():
        raise UserError(f"{path} does not exist or is not a file")
    papers = []
    for where, data in iter_jsonl(path, errors="replace", required=True):  # as `read_jsonl` reads
        example = example_from_json(data, where)
        papers.append((_strict_id(data.get("id"), where), example))
    return papers


def _strict_id(ident: Any, where: str) -> Any:
    """`ident` unchanged, or a UserError naming the line when strict JSON cannot hold it.

    Python's reader takes `NaN`, `Infinity` and a number past a float's range (`1e400`, read
    as infinity), and its writer gave them back as `NaN`/`Infinity`, which strict parsers
    (jq, JavaScript, Go, Java) reject: the whole output could not be read. The id is refused
    rather than written as a string, because `score` gives each id back as written so that
    its output joins on it, and "NaN" would join with nothing; the input is not strict JSON
    either, so its producer is the thing to fix.
    """
    try:
        json.dumps(ident, allow_nan=False)
    except ValueError:
        raise UserError(
            f"{where}: 'id' holds NaN or Infinity (or a number too large for a float), which "
            "strict JSON cannot hold; write the id as a string"
        ) from None
    return ident


def _refuse_same_file(input_path: Path, output_path: Path) -> None:
    """A UserError when `--output` is the `--input` file (by any path or hard link).

    The output is renamed over its path once every paper is scored, so the papers were
    replaced by their scores: a typo lost the input file.
    """
    if to_stdout(output_path):
        return
    try:
        same = output_path.exists() and os.path.samefile(input_path, output_path)
    except OSError:
        return  # one of them cannot be looked at: reading or writing it says why
    if same:
        raise UserError(f"--output {output_path} is the --input file; write the scores to another file")


def _json_line(row: dict[str, Any]) -> str:
    """One output line, as UTF-8 text where it can be.

    An id is given back as written, and JSON may write half of a surrogate pair ("\\ud800"),
    which no UTF-8 text can hold: such a line is written with ASCII escapes, which read
    back to the same id (writing it raw stopped `score` with a traceback after every paper
    was scored). An id written as a number keeps its digits: JSON writes the float 2203.101
    for `2203.10100`, so its text (a `JsonNumber`'s) replaces what JSON wrote.
    """
    line = json.dumps(row, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(row)
    ident = row.get("id")
    written = '{"id": ' + json.dumps(ident)
    if isinstance(ident, JsonNumber) and line.startswith(written):
        line = '{"id": ' + ident.text + line[len(written) :]
    return line + "\n"


@click.group("classify")
def classify_group() -> None:
    """Train, score, evaluate, replay and explain the per-catalogue classifiers."""


@classify_group.command("train")
@click.argument("name")
@click.option(
    "--negatives-jsonl",
    "negatives",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Extra known-irrelevant papers (papers.jsonl format); repeatable.",
)
@click.option(
    "--seed", default=0, show_default=True, type=SEED, help="Random seed (unlabeled sample, folds)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the model card as JSON.")
@pass_app
def train_command(app: AppContext, name: str, negatives: tuple[Path, ...], seed: int, as_json: bool) -> None:
    """Train catalogue NAME's models from the store and save them with a model card.

    Positives are the catalogue's entries with abstracts and accepted papers; negatives are
    rejected papers (and --negatives-jsonl); unreviewed papers are a weighted unlabeled sample.

    \b
    Example:
      vpt-tracker classify train awesome-vpt --negatives-jsonl off-topic.jsonl
    """
    extra = [example for path in negatives for _id, example in _read_papers(path)]
    engine = app.engine()
    model, directory = train_catalogue(engine, name, settings=app.settings, extra_negatives=extra, seed=seed)
    # The queue's pending candidates get the new model's scores now, not at the next enqueue.
    rescored = rescore_catalogue(engine, name, model)
    if as_json:
        echo_json(model.card)
        return
    counts = model.card["counts"]
    click.echo(
        f"trained {name}: {counts['relevant']} relevant, {counts['rejected']} rejected, "
        f"{counts['unlabeled']} unlabeled papers; model in {directory}"
    )
    left_out = model.card["training_data"].get("decided_without_abstract") or {}
    if left_out:
        click.echo(
            "left out, for want of an abstract: "
            + ", ".join(f"{plural(n, 'paper')} {status}" for status, n in left_out.items())
            + " (they count once their abstract is stored: a nightly run or `ingest-jsonl` fills it)"
        )
    click.echo(
        f"relevance threshold {model.relevance.threshold:.4f}; labels with a model: "
        f"{', '.join(model.labels) or 'none'}; base-to-novel model: "
        f"{'yes' if model.base_to_novel else 'no'}"
    )
    if model.base_to_novel is None and counts["novel_positive"]:
        # Its preset needs the flag (`requires_base_to_novel`), and this model replaces the
        # preset's default, which had one: every candidate from now on comes without it.
        click.echo(
            f"no base-to-novel model: it needs at least {MIN_NOVEL_EXAMPLES} relevant papers and "
            f"{MIN_NOVEL_EXAMPLES} papers rejected with a reason that mentions {NOVEL_REASON!r} (or "
            "given by --negatives-jsonl) "
            f"(this catalogue has {counts['novel_positive']} and {counts['novel_negative']}); "
            "until then its candidates get no base-to-novel flag"
        )
    by_cue = model.card.get("labels_proposed_by_cue") or {}
    if by_cue:
        click.echo(
            "labels proposed by their cue (too few examples for a model): "
            + ", ".join(f"{label} ({cue})" for label, cue in by_cue.items())
        )
    for group in model.exclusive:
        how_many = "exactly one" if group in model.required else "at most one"
        click.echo(f"{how_many} label of {', '.join(group)} per paper: the most probable")
    click.echo(f"rescored {plural(rescored, 'pending candidate')} with the new model")


@classify_group.command("score")
@click.option("--catalogue", "name", required=True, help="Catalogue (or preset) whose model scores.")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), help="papers.jsonl")
@click.option(
    "--output",
    "output_path",
    required=True,
    type=OUTPUT_PATH,
    help="scores.jsonl, or - for standard output",
)
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@pass_app
def score_command(app: AppContext, name: str, input_path: Path, output_path: Path, jobs: int) -> None:
    """Score every paper of a JSON-lines file; no database is needed.

    Input lines hold {id, title, abstract | summary, authors?, categories?, comment?} (the
    arXiv corpus format as is). Output lines hold {id, relevance, labels, base_to_novel,
    base_to_novel_flag, proposed_labels, queued, low_confidence, rule}, in input order; `--output -` writes
    them to standard output.

    \b
    Example:
      vpt-tracker classify score --catalogue awesome-vpt --input papers.jsonl --output scores.jsonl
    """
    _refuse_same_file(input_path, output_path)
    settings = app.settings
    config = settings.catalogue(name)
    model, directory = load_model(settings, name, config.preset if config else None)
    rules = rules_for(settings, name)
    papers = _read_papers(input_path)
    queued = 0
    with write_output(output_path) as out, _progress(len(papers), f"scoring for {name}") as step:
        for start in range(0, len(papers), SCORE_CHUNK):
            chunk = papers[start : start + SCORE_CHUNK]
            scores = model.score([paper for _id, paper in chunk], rules, batch=10_000, jobs=jobs)
            for (ident, _paper), score in zip(chunk, scores, strict=True):
                row: dict[str, Any] = {"id": ident} | asdict(score)
                row["queued"] = model.should_queue(score)
                queued += row["queued"]
                out.write(_json_line(row))
            step(len(chunk))
    # With `--output -` stdout holds the scores alone, so the summary goes to stderr.
    click.echo(
        f"scored {plural(len(papers), 'paper')} with {directory}: "
        f"{queued} above threshold or included by a rule",
        err=to_stdout(output_path),
    )


def _counts(counts: dict[str, int]) -> str:
    """The training set's counts (`TrainingSet.counts`) in words, each noun agreeing with its count."""
    return (
        f"{plural(counts['relevant'], 'relevant paper')} "
        f"({counts['relevant_with_abstract']} with an abstract), "
        f"{counts['rejected']} rejected, {counts['unlabeled']} unlabeled; base-to-novel "
        f"{counts['novel_positive']} positive, {counts['novel_negative']} negative; "
        f"{plural(counts['labelled_entries_without_abstract'], 'labelled entry', 'labelled entries')} "
        "without an abstract"
    )


def _print_report(report: dict[str, Any]) -> None:
    rel = report["relevance"]
    sub = report["relevance_prompt_subset"]
    click.echo(f"catalogue {report['catalogue']}: {report['folds']}-fold nested cross-validation")
    click.echo(f"  counts: {_counts(report['counts'])}")
    for title, block in (("all papers", rel), ('papers mentioning "prompt"', sub)):
        click.echo(
            f"  relevance ({title}, {plural(block['papers'], 'paper')}, {block['positives']} relevant):"
        )
        click.echo(
            f"    recall at threshold {block['recall_at_threshold']:.3f}"
            f"   review load {block['review_load']:.4f}"
            f"   precision at threshold {block['precision_at_threshold']:.3f}"
        )
        if "wss_at_95" in block:
            click.echo(
                f"    WSS@95 {block['wss_at_95']:.3f}   load for 95% recall {block['load_for_95_recall']:.4f}"
            )
        click.echo(
            "    precision@k " + "  ".join(f"@{k}={v:.2f}" for k, v in block["precision_at_k"].items())
        )
        click.echo(
            "    recall at load " + "  ".join(f"{k}={v:.2f}" for k, v in block["recall_at_load"].items())
        )
    base = report["keyword_baseline"]
    click.echo(
        f"  keyword baseline ('prompt'): recall {base['recall']:.3f}, load {base['review_load']:.4f}, "
        f"precision {base['precision']:.3f}; WSS@95 on the prompt subset 0"
    )
    click.echo("  labels (precision / recall / F1 / support):")
    for key, m in report["labels"].items():
        click.echo(f"    {key:<24} {m['precision']:.2f} / {m['recall']:.2f} / {m['f1']:.2f} / {m['support']}")
    micro = report["labels_micro"]
    click.echo(f"    {'micro':<24} {micro['precision']:.2f} / {micro['recall']:.2f} / {micro['f1']:.2f}")
    if "base_to_novel" in report:
        m = report["base_to_novel"]
        click.echo(
            f"  base-to-novel: precision {m['precision']:.2f}, recall {m['recall']:.2f}, "
            f"F1 {m['f1']:.2f} ({plural(m['examples'], 'paper')}); "
            f"flags {m['flagged_unlabeled']:.2%} of the unlabeled papers"
        )
    if "exclusive_on_titles" in report:
        t = report["exclusive_on_titles"]
        entries = plural(t["entries"], "entry without an abstract", "entries without an abstract")
        click.echo(
            f"  one label per exclusive group, on {entries} (titles), "
            f"micro-F1: proposed {t['proposed']:.2f}, every label above its threshold "
            f"{t['every_label_above_threshold']:.2f}, the majority label {t['majority_label']:.2f}"
        )


@classify_group.command("evaluate")
@click.argument("name")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20), help="Outer CV folds.")
@click.option(
    "--seed", default=0, show_default=True, type=SEED, help="Random seed (unlabeled sample, folds)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@pass_app
def evaluate_command(app: AppContext, name: str, folds: int, seed: int, as_json: bool) -> None:
    """Cross-validate catalogue NAME's models on the store's data (nothing tuned on a test fold).

    Prints recall at the threshold, review load, WSS@95, precision@k, per-label P/R/F1 and
    base-to-novel P/R/F1, for all papers and for those that mention "prompt".

    \b
    Example:
      vpt-tracker classify evaluate awesome-vpt --folds 5 --json
    """
    report = evaluate_catalogue(app.engine(), name, settings=app.settings, folds=folds, seed=seed)
    if as_json:
        echo_json(report)
    else:
        _print_report(report)


@classify_group.command("replay")
@click.argument("name")
@click.option("--before", "before", required=True, type=click.Path(path_type=Path), help="The older README.")
@click.option("--after", "after", required=True, type=click.Path(path_type=Path), help="The newer README.")
@click.option(
    "--seed", default=0, show_default=True, type=SEED, help="Random seed (unlabeled sample, folds)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the audit as JSON.")
@pass_app
def replay_command(app: AppContext, name: str, before: Path, after: Path, seed: int, as_json: bool) -> None:
    """Recall audit: train on the older README only, rank the later-added entries.

    Reports where the entries added between BEFORE and AFTER rank among all papers in the
    store: the share found at 1%, 3% and 10% review load.

    \b
    Example:
      vpt-tracker classify replay vpt --before README@2025-06-06.md --after README@2025-06-24.md
    """
    report = replay_catalogue(
        app.engine(), name, read_markdown(before), read_markdown(after), settings=app.settings, seed=seed
    )
    if as_json:
        echo_json(report)
    else:
        _print_replay(name, report)


def _print_replay(name: str, report: dict[str, Any]) -> None:
    click.echo(
        f"catalogue {name}: trained on "
        f"{plural(report['before_entries_in_store'], 'older entry', 'older entries')}; "
        f"{plural(report['added_in_pool'], 'added entry', 'added entries')} ranked among "
        f"{plural(report['papers'], 'paper')}"
    )
    click.echo("  recall at load " + "  ".join(f"{k}={v:.2f}" for k, v in report["recall_at_load"].items()))
    for row in report["ranks"]:
        click.echo(f"  #{row['rank']:<7} {row['relevance']:.3f}  {row['title']}")


@classify_group.command("explain")
@click.option("--catalogue", "name", required=True, help="Catalogue whose model to explain.")
@click.argument("paper_id", type=ROW_ID)
@click.option(
    "--top",
    default=10,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Terms shown each way (up, down).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@pass_app
def explain_command(app: AppContext, name: str, paper_id: int, top: int, as_json: bool) -> None:
    """Show the terms that pushed PAPER_ID's relevance score up or down.

    \b
    Example:
      vpt-tracker classify explain --catalogue awesome-vpt 1234
    """
    result = explain(app.engine(), name, paper_id, top, settings=app.settings)
    if as_json:
        echo_json(result.to_json())
        return
    e = result.explanation
    mark = " (low confidence: no abstract)" if e.low_confidence else ""
    click.echo(f"{result.title}\n  relevance {e.probability:.3f} (threshold {e.threshold:.3f}){mark}")
    if result.rule:
        click.echo(f"  rule: {result.rule}")
    _echo_terms(e, "  ")
    if (novel := result.novel_explanation) is not None:
        flagged = "flagged" if result.base_to_novel_flag else "not flagged"
        click.echo(f"  base-to-novel {novel.probability:.3f} (threshold {novel.threshold:.3f}, {flagged})")
        _echo_terms(novel, "    ")


def _echo_terms(explanation: Explanation, indent: str) -> None:
    """The terms each way, or "(none)" where none moved the score (--json's empty list): a
    paper of words no model knows printed `up:` and `down:` with nothing after them."""
    up = ", ".join(f"{t} (+{w:.3f})" for t, w in explanation.up)
    down = ", ".join(f"{t} ({w:.3f})" for t, w in explanation.down)
    click.echo(f"{indent}up:   {up or '(none)'}")
    click.echo(f"{indent}down: {down or '(none)'}")


@classify_group.command("enqueue")
@click.argument("name")
@pass_app
def enqueue_command(app: AppContext, name: str) -> None:
    """Score every paper not yet known to catalogue NAME and queue those above threshold.

    Refused (exit 75) while a nightly or backfill run, or another enqueue, is running.

    \b
    Example:
      vpt-tracker classify enqueue awesome-vpt
    """
    engine = app.engine()
    # The pipeline's lock: two enqueues at once both insert the papers neither knew of, and
    # the second dies on the (paper, catalogue) key, losing its whole transaction.
    with exclusive(engine, "pipeline"):
        stats = score_and_enqueue(engine, name, None, settings=app.settings)
    click.echo(f"{name}: {stats.summary()}")


def register(main: click.Group) -> None:
    main.add_command(classify_group)
