"""Classifier benchmark: training on ~15k real papers and scoring 300k papers.

Reads the real corpora in ../shared/data (a dev command, like `make models`), trains the
awesome-vpt recipe's models (its relevant and rejected papers + 15,000 unlabeled) and scores 300,000
papers made by repeating the ~30k-paper pool (real titles and abstracts). Prints both times
against the targets (training ≤ 30 s, scoring ≤ 60 s). Timings on a shared machine are noisy.

    .venv/bin/python bench/classify.py --shared ../shared/data [--papers 300000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

from vpt_tracker.classify.data import Example
from vpt_tracker.classify.model import CatalogueModel, Hyper
from vpt_tracker.classify.recipes import RECIPES, build_training_set, load_pool
from vpt_tracker.classify.taxonomy import load_preset


def _cpu_seconds() -> float:
    """CPU time of this process: on a shared machine the wall clock measures the neighbours as
    much as this code. (Scoring workers are not counted: run with --jobs 1 for a CPU figure.)"""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--papers", type=int, default=300_000, help="papers to score")
    parser.add_argument("--unlabeled", type=int, default=15_000, help="unlabeled training papers")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="scoring processes")
    parser.add_argument(
        "--preset", default="awesome-vpt", help="recipe and preset (generalizable-vlm adds its cue features)"
    )
    parser.add_argument("--analyzer", choices=("word", "char_wb"), default="word", help="TF-IDF analyzer")
    args = parser.parse_args()

    pool = load_pool(args.shared)
    recipe = RECIPES[args.preset]
    data, _ = build_training_set(recipe, args.shared / "lists", pool, unlabeled=args.unlabeled)
    preset = load_preset(args.preset)
    keys = preset.label_keys
    total = len(data.relevant) + len(data.unlabeled)
    started, cpu = time.perf_counter(), _cpu_seconds()
    model = CatalogueModel.train(
        "bench",
        data,
        keys,
        Hyper.for_preset(preset, analyzer=args.analyzer),
    )
    train_s, train_cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    print(
        f"training: {total} papers ({len(data.relevant)} relevant) in {train_s:.1f} s wall, "
        f"{train_cpu:.1f} s CPU (target <= 30 s)"
    )

    papers: list[Example] = []
    while len(papers) < args.papers:
        papers.extend(pool.papers[: args.papers - len(papers)])
    started, cpu = time.perf_counter(), _cpu_seconds()
    scores = model.score(papers, batch=10_000, jobs=args.jobs)
    score_s, score_cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    queued = sum(model.should_queue(s) for s in scores)
    print(
        f"scoring: {len(papers)} papers in {score_s:.1f} s wall, "
        f"{f'{score_cpu:.1f} s CPU' if args.jobs == 1 else 'CPU not measured in workers'} "
        f"with {args.jobs} process(es) "
        f"({len(papers) / score_s:,.0f} papers/s; target <= 60 s); {queued} above threshold"
    )
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} (shared; figures are noisy)")


if __name__ == "__main__":
    main()
