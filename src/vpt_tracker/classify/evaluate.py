"""Honest evaluation: nested cross-validation and the replay audit.

`evaluate` splits the papers into K folds by a hash of their identity (so a paper is in
the same fold whether it is a relevant, a base-to-novel or an unlabeled example), trains a
complete `CatalogueModel` on K-1 folds (its own inner CV picks calibration and thresholds)
and measures it on the held-out fold. Nothing is tuned on the held-out fold.

Unlabeled papers count as negatives here, so review load and precision are upper and lower
bounds: some unlabeled papers are relevant papers no list has yet.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vpt_tracker.classify.calibration import prf
from vpt_tracker.classify.data import Example, TrainingSet, mentions_prompt
from vpt_tracker.classify.model import MIN_POSITIVES, CatalogueModel, Hyper, relevant_with_abstracts
from vpt_tracker.errors import UserError

LOADS = (0.01, 0.03, 0.10)
PRECISION_AT = (10, 25, 50, 100)


def fold_of(example: Example, folds: int, seed: int) -> int:
    digest = hashlib.sha256(f"{seed}:{example.key()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


def ranking_metrics(probs: NDArray[Any], y: NDArray[Any], threshold: float | None = None) -> dict[str, Any]:
    """Recall and load at the threshold, WSS@95, precision@k and recall at fixed review loads."""
    n, positives = len(y), int(y.sum())
    order = np.argsort(-probs, kind="stable")
    hits = np.cumsum(y[order])
    result: dict[str, Any] = {"papers": n, "positives": positives}
    if threshold is not None:
        queued = probs >= threshold
        result["recall_at_threshold"] = float((queued & (y == 1)).sum() / max(1, positives))
        result["review_load"] = float(queued.mean()) if n else 0.0
        result["precision_at_threshold"] = float((queued & (y == 1)).sum() / max(1, queued.sum()))
    if positives:
        needed = math.ceil(0.95 * positives)
        reviewed = int(np.searchsorted(hits, needed) + 1)
        result["wss_at_95"] = float((n - reviewed) / n - (1 - hits[reviewed - 1] / positives))
        result["load_for_95_recall"] = reviewed / n
    result["precision_at_k"] = {str(k): float(hits[min(k, n) - 1] / min(k, n)) for k in PRECISION_AT if n}
    result["recall_at_load"] = {
        f"{int(load * 100)}%": float(hits[max(1, math.ceil(load * n)) - 1] / max(1, positives))
        for load in LOADS
        if n
    }
    return result


@dataclass
class _Pooled:
    probs: list[float]
    truth: list[int]
    queued: list[bool]
    prompt: list[bool]


def _split(
    examples: Sequence[Example], fold: int, folds: int, seed: int
) -> tuple[list[Example], list[Example]]:
    train: list[Example] = []
    test: list[Example] = []
    for example in examples:
        (test if fold_of(example, folds, seed) == fold else train).append(example)
    return train, test


def _check_folds(name: str, relevant: Sequence[Example], folds: int, seed: int) -> None:
    """A UserError, before any fold trains, when `folds` cannot split these relevant papers.

    Each fold's model trains on the other folds' papers and needs `MIN_POSITIVES` of them;
    checking only "2 per fold" let 9 papers through, and the inner training then stopped with
    "has 5 relevant papers ... accept more papers", a count that was not the catalogue's.
    """
    fewest = min(sum(fold_of(e, folds, seed) != fold for e in relevant) for fold in range(folds))
    too_few = f"catalogue {name!r} has {relevant_with_abstracts(len(relevant))}: too few for {folds} folds"
    if fewest < MIN_POSITIVES:
        raise UserError(
            f"{too_few} (each fold's model trains on the other folds' papers, which hold as few "
            f"as {fewest}; a model needs at least {MIN_POSITIVES}, and each fold at least 2 to test)"
        )
    if len(relevant) < folds * 2:
        raise UserError(f"{too_few} (each fold needs at least 2 of them to test: {folds * 2} in all)")


def evaluate(
    name: str, data: TrainingSet, label_keys: Sequence[str], hyper: Hyper | None = None, *, folds: int = 5
) -> dict[str, Any]:
    """Nested K-fold metrics for relevance, labels and base-to-novel, as JSON-able data."""
    hyper = hyper or Hyper()
    if folds < 2:
        raise UserError("--folds must be at least 2")
    # A paper with no label of a required group is unlabelled for it, here as in training.
    data = replace(data, relevant=[e.silent_on(hyper.required, label_keys) for e in data.relevant])
    relevant = [e for e in data.relevant if e.has_abstract]
    _check_folds(name, relevant, folds, hyper.seed)
    pooled = _Pooled([], [], [], [])
    label_true: list[set[str]] = []
    label_pred: list[set[str]] = []
    novel_probs: list[float] = []
    novel_truth: list[int] = []
    novel_pred: list[bool] = []
    novel_unlabeled_flags: list[bool] = []
    fold_thresholds: list[float] = []
    for fold in range(folds):
        parts = {
            role: _split(getattr(data, role), fold, folds, hyper.seed)
            for role in ("relevant", "rejected", "unlabeled", "novel_positive", "novel_negative")
        }
        train = TrainingSet(
            relevant=parts["relevant"][0],
            rejected=parts["rejected"][0],
            unlabeled=parts["unlabeled"][0],
            novel_positive=parts["novel_positive"][0],
            novel_negative=parts["novel_negative"][0],
            entries_without_abstract=data.entries_without_abstract,  # never tested: no abstract
        )
        model = CatalogueModel.train(name, train, label_keys, hyper)
        fold_thresholds.append(model.relevance.threshold)
        test_pos = [e for e in parts["relevant"][1] if e.has_abstract]
        test_neg = parts["rejected"][1] + parts["unlabeled"][1]
        # Labels as a candidate gets them, also for a relevant paper below the threshold; the
        # negatives' labels are not measured, so their label cues are read as in a nightly run.
        scores = model.score(test_pos, all_labels=True) + model.score(test_neg)
        for example, score, is_relevant in zip(
            test_pos + test_neg, scores, [1] * len(test_pos) + [0] * len(test_neg), strict=True
        ):
            pooled.probs.append(score.relevance)
            pooled.truth.append(is_relevant)
            pooled.queued.append(model.should_queue(score))
            pooled.prompt.append(mentions_prompt(example))
        if model.base_to_novel is not None:
            # The flag on papers nobody reviewed: nearly all of them report no base-to-novel
            # experiments, so this share bounds how often the flag is wrong in a nightly run.
            unlabeled_scores = scores[len(test_pos) + len(parts["rejected"][1]) :]
            novel_unlabeled_flags.extend(bool(s.base_to_novel_flag) for s in unlabeled_scores)
        for example, score in zip(test_pos, scores[: len(test_pos)], strict=True):
            # A label the paper's source cannot express is neither right nor wrong here.
            known = {key for key in label_keys if example.knows_label(key)}
            label_true.append(set(example.labels) & known)
            label_pred.append(set(score.proposed_labels) & known)
        novel_test = parts["novel_positive"][1] + parts["novel_negative"][1]
        if model.base_to_novel is not None and novel_test:
            truths = [1] * len(parts["novel_positive"][1]) + [0] * len(parts["novel_negative"][1])
            for score, is_novel in zip(model.score(novel_test), truths, strict=True):
                assert score.base_to_novel is not None
                novel_probs.append(score.base_to_novel)
                novel_truth.append(is_novel)
                novel_pred.append(bool(score.base_to_novel_flag))

    probs = np.array(pooled.probs)
    truth = np.array(pooled.truth)
    queued = np.array(pooled.queued)
    prompt = np.array(pooled.prompt)
    report: dict[str, Any] = {"catalogue": name, "folds": folds, "seed": hyper.seed, "counts": data.counts()}
    report["relevance"] = _with_queue(ranking_metrics(probs, truth), queued, truth)
    report["relevance"]["fold_thresholds"] = [round(t, 4) for t in fold_thresholds]
    report["relevance_prompt_subset"] = _with_queue(
        ranking_metrics(probs[prompt], truth[prompt]), queued[prompt], truth[prompt]
    )
    report["keyword_baseline"] = {
        "rule": "queue every paper whose title/abstract/comment says 'prompt'",
        "recall": float((prompt & (truth == 1)).sum() / max(1, truth.sum())),
        "review_load": float(prompt.mean()),
        "precision": float((prompt & (truth == 1)).sum() / max(1, prompt.sum())),
        "wss_at_95_on_prompt_subset": 0.0,  # every paper of the subset matches: no ranking at all
    }
    report["labels"], report["labels_micro"] = _label_metrics(label_true, label_pred, label_keys)
    if novel_truth:
        report["base_to_novel"] = prf(np.array(novel_pred), np.array(novel_truth) == 1)
        report["base_to_novel"]["examples"] = len(novel_truth)
        flags = novel_unlabeled_flags
        report["base_to_novel"]["flagged_unlabeled"] = sum(flags) / len(flags) if flags else 0.0
    on_titles = exclusive_on_titles(name, data, label_keys, hyper)
    if on_titles is not None:
        report["exclusive_on_titles"] = on_titles
    report["summary"] = {
        "recall_at_threshold": report["relevance"]["recall_at_threshold"],
        "review_load": report["relevance"]["review_load"],
        "wss_at_95": report["relevance"].get("wss_at_95"),
        "prompt_subset_recall": report["relevance_prompt_subset"].get("recall_at_threshold"),
        "prompt_subset_review_load": report["relevance_prompt_subset"].get("review_load"),
        "prompt_subset_wss_at_95": report["relevance_prompt_subset"].get("wss_at_95"),
        "label_micro_f1": report["labels_micro"]["f1"],
        "base_to_novel_f1": report.get("base_to_novel", {}).get("f1"),
        "base_to_novel_flagged_unlabeled": report.get("base_to_novel", {}).get("flagged_unlabeled"),
    }
    return report


def exclusive_on_titles(
    name: str, data: TrainingSet, label_keys: Sequence[str], hyper: Hyper
) -> dict[str, Any] | None:
    """How the exclusive groups' labels are chosen, on the labelled entries without an abstract.

    Their labels are the list's own, but only their titles can be scored, and the label
    models learn from those titles too: each half (by the folds' hash) is scored by a model
    trained on the other half alone. Micro-F1 over the groups' labels, for the model's
    proposals and for two other rules: every label that passes its threshold (as if the
    group were not exclusive), and the other half's most frequent label. None without
    exclusive groups or with too few such entries.
    """
    groups = tuple(dict.fromkeys(hyper.exclusive + hyper.required))
    grouped = {key for group in groups for key in group}
    entries = [e for e in data.entries_without_abstract if grouped.intersection(e.labels)]
    halves = [[e for e in entries if fold_of(e, 2, hyper.seed) == half] for half in (0, 1)]
    if not grouped or not all(halves):
        return None
    rules = ("proposed", "every_label_above_threshold", "majority_label")
    truth: list[set[str]] = []
    guesses: dict[str, list[set[str]]] = {rule: [] for rule in rules}
    for test, other in ((halves[0], halves[1]), (halves[1], halves[0])):
        model = CatalogueModel.train(name, replace(data, entries_without_abstract=other), label_keys, hyper)
        majority = {
            Counter(key for e in other for key in e.labels if key in group).most_common(1)[0][0]
            for group in groups
            if any(key in e.labels for e in other for key in group)
        }
        for entry, score in zip(test, model.score(test, all_labels=True), strict=True):
            above = [key for key, p in score.labels.items() if p >= model.labels[key].threshold]
            truth.append(grouped.intersection(entry.labels))
            guesses["proposed"].append(grouped.intersection(score.proposed_labels))
            guesses["every_label_above_threshold"].append(grouped.intersection(above))
            guesses["majority_label"].append(majority)
    result: dict[str, Any] = {"entries": len(truth)}
    for rule in rules:
        result[rule] = _label_metrics(truth, guesses[rule], sorted(grouped))[1]["f1"]
    return result


def _with_queue(metrics: dict[str, Any], queued: NDArray[Any], truth: NDArray[Any]) -> dict[str, Any]:
    """Threshold metrics from the per-fold queue decisions (each fold has its own threshold)."""
    positives = max(1, int(truth.sum()))
    metrics["recall_at_threshold"] = float((queued & (truth == 1)).sum() / positives)
    metrics["review_load"] = float(queued.mean()) if len(queued) else 0.0
    metrics["precision_at_threshold"] = float((queued & (truth == 1)).sum() / max(1, queued.sum()))
    return metrics


def _label_metrics(
    truth: list[set[str]], predicted: list[set[str]], keys: Sequence[str]
) -> tuple[dict[str, Any], dict[str, float]]:
    per_label: dict[str, Any] = {}
    tp = fp = fn = 0
    for key in keys:
        actual = np.array([key in t for t in truth], dtype=bool)
        guess = np.array([key in p for p in predicted], dtype=bool)
        if not actual.any() and not guess.any():
            continue
        per_label[key] = prf(guess, actual)
        tp += int((guess & actual).sum())
        fp += int((guess & ~actual).sum())
        fn += int((~guess & actual).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return per_label, {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}


def replay(
    name: str,
    before: TrainingSet,
    added: Sequence[Example],
    pool: Sequence[Example],
    label_keys: Sequence[str],
    hyper: Hyper | None = None,
) -> dict[str, Any]:
    """Train on the older list only and rank the later-added entries among all `pool` papers.

    `pool` is every paper in the store (it must contain the added ones); the result says
    which share of them a reviewer would have seen at 1%, 3% and 10% review load.
    """
    model = CatalogueModel.train(name, before, label_keys, hyper or Hyper())
    added_keys = {e.key() for e in added}
    known = {e.key() for e in before.relevant}
    candidates = [e for e in pool if e.key() not in known]
    if not candidates:
        raise UserError("no papers to rank: the store holds only the older list's entries")
    scores = model.score(candidates)
    probs = np.array([s.relevance for s in scores])
    truth = np.array([e.key() in added_keys for e in candidates], dtype=int)
    metrics = ranking_metrics(probs, truth, model.relevance.threshold)
    order = np.argsort(-probs, kind="stable")
    rank = {int(index): position + 1 for position, index in enumerate(order)}
    metrics["added"] = len(added)
    metrics["added_in_pool"] = int(truth.sum())
    metrics["ranks"] = sorted(
        (
            {"title": candidates[i].title, "rank": rank[i], "relevance": float(probs[i])}
            for i in range(len(candidates))
            if truth[i]
        ),
        key=lambda row: row["rank"],
    )
    return metrics
