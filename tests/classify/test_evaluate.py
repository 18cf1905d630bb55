"""Nested cross-validation and ranking metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from vpt_tracker.classify.data import Example, TrainingSet
from vpt_tracker.classify.evaluate import evaluate, exclusive_on_titles, fold_of, ranking_metrics, replay
from vpt_tracker.classify.model import Hyper
from vpt_tracker.cli.classify import _print_replay, _print_report
from vpt_tracker.errors import UserError

from .conftest import VPT_LABELS


def test_ranking_metrics_by_hand() -> None:
    # 10 papers, 2 relevant, ranked 1st and 4th.
    probs = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    truth = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    m = ranking_metrics(probs, truth, threshold=0.65)
    assert m["recall_at_threshold"] == 0.5 and m["review_load"] == pytest.approx(0.3)
    assert m["load_for_95_recall"] == pytest.approx(0.4)  # both found after 4 of 10
    assert m["wss_at_95"] == pytest.approx(0.6)  # (10 - 4) / 10 - (1 - 1.0)
    assert m["precision_at_k"]["10"] == pytest.approx(0.2)
    assert m["recall_at_load"] == {"1%": 0.5, "3%": 0.5, "10%": 0.5}


def test_folds_follow_the_paper_not_its_role() -> None:
    paper = Example("Same paper", "abstract", id="2401.00001")
    assert fold_of(paper, 5, 0) == fold_of(Example("Same paper", "other text", id="2401.00001v2"), 5, 0)
    assert len({fold_of(Example(f"p{i}"), 5, 0) for i in range(50)}) == 5


def test_nested_cv_reports_every_metric(
    training: TrainingSet, hyper: Hyper, capsys: pytest.CaptureFixture[str]
) -> None:
    report = evaluate("fixture", training, VPT_LABELS, hyper, folds=3)
    rel = report["relevance"]
    assert rel["positives"] == 56 and rel["papers"] == 456
    assert rel["recall_at_threshold"] >= 0.8
    assert rel["wss_at_95"] > 0.3
    assert set(rel["precision_at_k"]) == {"10", "25", "50", "100"}
    sub = report["relevance_prompt_subset"]
    assert sub["papers"] < rel["papers"] and sub["positives"] <= rel["positives"]
    # the keyword baseline queues every "prompt" paper; the model must do better than it on precision
    assert rel["precision_at_threshold"] > report["keyword_baseline"]["precision"]
    assert report["labels_micro"]["support"] > 0 and "multi-modality" in report["labels"]
    assert 0.0 <= report["base_to_novel"]["f1"] <= 1.0 and report["base_to_novel"]["examples"] == 85
    # the flag's share on held-out unlabeled papers (400 of them): at most a few are flagged
    flagged = report["base_to_novel"]["flagged_unlabeled"]
    assert 0.0 <= flagged < 0.05 and report["summary"]["base_to_novel_flagged_unlabeled"] == flagged
    _print_report(report)  # what `classify evaluate` prints
    printed = capsys.readouterr().out
    assert "base-to-novel: precision" in printed and f"flags {flagged:.2%} of the unlabeled papers" in printed
    assert report["summary"]["wss_at_95"] == rel["wss_at_95"]


def test_exclusive_groups_are_checked_on_the_entries_without_an_abstract(
    training: TrainingSet, hyper: Hyper, capsys: pytest.CaptureFixture[str]
) -> None:
    """Entries scored from their titles, each half by a model that learned from the other half."""
    levels = ("pixel", "token")
    titled = [
        Example(e.title, "", labels=tuple(k for k in e.labels if k in levels)[:1], id=e.id)
        for e in training.relevant
        if set(e.labels) & set(levels)
    ]
    data = replace(training, entries_without_abstract=titled)
    report = exclusive_on_titles("fixture", data, VPT_LABELS, replace(hyper, exclusive=(levels,)))
    assert report is not None and report["entries"] == len(titled) >= 6
    # The majority rule, by hand: each half gets the other half's most frequent level.
    halves = [[e for e in titled if fold_of(e, 2, hyper.seed) == half] for half in (0, 1)]
    right = 0
    for test, other in ((halves[0], halves[1]), (halves[1], halves[0])):
        majority = Counter(e.labels[0] for e in other).most_common(1)[0][0]
        right += sum(e.labels[0] == majority for e in test)
    assert report["majority_label"] == pytest.approx(right / len(titled))  # one guess, one truth each
    assert all(0.0 <= report[rule] <= 1.0 for rule in ("proposed", "every_label_above_threshold"))
    assert exclusive_on_titles("fixture", data, VPT_LABELS, hyper) is None  # no exclusive group
    _print_report(evaluate("fixture", data, VPT_LABELS, replace(hyper, exclusive=(levels,)), folds=3))
    assert f"on {len(titled)} entries without an abstract (titles)" in capsys.readouterr().out


def test_evaluate_refuses_too_few_folds_or_papers(training: TrainingSet) -> None:
    with pytest.raises(UserError, match="at least 2"):
        evaluate("x", training, VPT_LABELS, folds=1)
    with pytest.raises(UserError, match="too few for 5 folds"):
        evaluate("x", TrainingSet(training.relevant[:9], unlabeled=training.unlabeled), VPT_LABELS, folds=5)
    with pytest.raises(UserError, match=r"^catalogue 'x' has 1 relevant paper with an abstract: too few"):
        evaluate("x", TrainingSet(training.relevant[:1], unlabeled=training.unlabeled), VPT_LABELS, folds=2)


@pytest.mark.parametrize("folds", [2, 3, 4])
def test_evaluate_with_too_few_papers_per_training_fold_names_the_minimum(
    training: TrainingSet, folds: int
) -> None:
    """9 relevant papers pass "2 per fold" for 2-4 folds, but a fold's model trains on the other
    folds' papers (5-7 here): the inner training stopped with "catalogue 'x' has 5 relevant
    papers with abstracts; at least 8 are needed to train (... accept more papers)", a count
    that was not the catalogue's, after the folds before it had trained. Now it is said first."""
    data = TrainingSet(training.relevant[:9], unlabeled=training.unlabeled)
    fewest = min(sum(fold_of(e, folds, 0) != fold for e in data.relevant) for fold in range(folds))
    assert fewest < 8
    with pytest.raises(UserError) as caught:
        evaluate("x", data, VPT_LABELS, Hyper(folds=4, seed=0, max_features=8000), folds=folds)
    assert str(caught.value) == (
        f"catalogue 'x' has 9 relevant papers with abstracts: too few for {folds} folds (each fold's "
        f"model trains on the other folds' papers, which hold as few as {fewest}; a model needs at "
        "least 8, and each fold at least 2 to test)"
    )


def test_replay_ranks_the_added_entries(training: TrainingSet, hyper: Hyper) -> None:
    before, added = training.relevant[:30], training.relevant[30:]
    pool = training.relevant + training.unlabeled
    report = replay("r", TrainingSet(before, unlabeled=training.unlabeled), added, pool, VPT_LABELS, hyper)
    assert report["added_in_pool"] == len(added) and report["papers"] == len(pool) - len(before)
    assert report["recall_at_load"]["10%"] >= 0.5  # 42 slots at 10% load for 26 added papers
    ranks = [row["rank"] for row in report["ranks"]]
    assert ranks == sorted(ranks) and len(ranks) == len(added)


def test_the_printed_report_and_replay_say_1_paper_not_1_papers(
    training: TrainingSet, hyper: Hyper, capsys: pytest.CaptureFixture[str]
) -> None:
    """`classify evaluate` and `classify replay` printed "1 papers", "1 entries" and the training
    counts as a Python dict; every count they print now goes through `plural`."""
    report = evaluate("fixture", training, VPT_LABELS, hyper, folds=3)
    # A real report with every count set to 1 (too few papers to train a model for a real one).
    report["counts"] = dict.fromkeys(report["counts"], 1)
    for block in ("relevance", "relevance_prompt_subset"):
        report[block].update(papers=1, positives=1)
    report["base_to_novel"]["examples"] = 1
    report["exclusive_on_titles"] = {
        "entries": 1,
        "proposed": 1.0,
        "every_label_above_threshold": 1.0,
        "majority_label": 1.0,
    }
    _print_report(report)
    printed = capsys.readouterr().out
    assert (
        "  counts: 1 relevant paper (1 with an abstract), 1 rejected, 1 unlabeled; "
        "base-to-novel 1 positive, 1 negative; 1 labelled entry without an abstract\n"
    ) in printed
    assert "  relevance (all papers, 1 paper, 1 relevant):\n" in printed
    assert '  relevance (papers mentioning "prompt", 1 paper, 1 relevant):\n' in printed
    assert "F1 " in printed and " (1 paper); flags " in printed
    assert "on 1 entry without an abstract (titles)" in printed

    # Trained on the older list alone, one paper added since: the only one left to rank.
    before, added = training.relevant[:30], training.relevant[30:31]
    replayed = replay("r", replace(training, relevant=before), added, before + added, VPT_LABELS, hyper)
    assert replayed["papers"] == replayed["added_in_pool"] == 1
    replayed["before_entries_in_store"] = 1  # what replay_catalogue adds: 30 here, at least 8 really
    _print_replay("r", replayed)
    assert capsys.readouterr().out.startswith(
        "catalogue r: trained on 1 older entry; 1 added entry ranked among 1 paper\n"
    )
