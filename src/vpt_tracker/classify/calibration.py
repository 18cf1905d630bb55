"""Linear scorers, their calibration and their thresholds: the statistics under every model.

Kept apart from `model.py`, which assembles these pieces into one catalogue's models, so
that the rules which decide a threshold (and the reasons for them) read on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

FloatArray = NDArray[np.float64]


def _sigmoid(values: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(values, -40, 40))), dtype=np.float64)


@dataclass
class LinearScorer:
    """A logistic regression reduced to its weights, with a Platt sigmoid on top.

    Keeping only arrays (not the sklearn estimator) makes the saved model small and makes
    scoring one sparse matrix product.
    """

    coef: FloatArray
    intercept: float
    platt_a: float
    platt_b: float
    threshold: float

    def decision(self, features: sparse.csr_matrix) -> FloatArray:
        return np.asarray(features @ self.coef, dtype=np.float64).ravel() + self.intercept

    def proba(self, features: sparse.csr_matrix) -> FloatArray:
        return _sigmoid(self.platt_a * self.decision(features) + self.platt_b)


def _fit_lr(features: Any, y: NDArray[Any], weights: FloatArray, c: float) -> LogisticRegression:
    model = LogisticRegression(C=c, solver="lbfgs", max_iter=300)
    model.fit(features, y, sample_weight=weights)
    return model


def _balanced(y: NDArray[Any], base: FloatArray | None = None) -> FloatArray:
    """Sample weights that give both classes the same total weight (on top of `base`)."""
    weights = np.ones(len(y)) if base is None else base.copy()
    for value in (0, 1):
        mask = y == value
        total = weights[mask].sum()
        if total > 0:
            weights[mask] *= len(y) / (2.0 * total)
    return weights


def fit_calibrated(
    features: sparse.csr_matrix,
    y: NDArray[Any],
    c: float,
    folds: int,
    seed: int,
    base_weights: FloatArray | None,
) -> tuple[LinearScorer, FloatArray]:
    """The refit model plus out-of-fold calibrated probabilities (threshold still unset)."""
    y = np.asarray(y, dtype=int)
    n_splits = max(2, min(folds, int(y.sum()), int((1 - y).sum())))
    oof = np.zeros(len(y))
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    weights = _balanced(y, base_weights)
    for train, test in splitter.split(np.zeros(len(y)), y):
        model = _fit_lr(
            features[train],
            y[train],
            _balanced(y[train], None if base_weights is None else base_weights[train]),
            c,
        )
        oof[test] = model.decision_function(features[test])
    platt = LogisticRegression(C=1e4, solver="lbfgs")
    platt.fit(oof.reshape(-1, 1), y)
    final = _fit_lr(features, y, weights, c)
    scorer = LinearScorer(
        coef=np.asarray(final.coef_, dtype=np.float64).ravel(),
        intercept=float(final.intercept_[0]),
        platt_a=float(platt.coef_[0, 0]),
        platt_b=float(platt.intercept_[0]),
        threshold=0.5,
    )
    return scorer, _sigmoid(scorer.platt_a * oof + scorer.platt_b)


def recall_threshold(positive_probs: FloatArray, target: float) -> float:
    """A threshold that keeps at least `target` of *new* relevant papers, not just of these.

    The k-th lowest out-of-fold positive score with k = floor((1 - target) * (n + 1)), at
    least 1: a new relevant paper is exchangeable with the n known ones, so it scores below
    that threshold with probability at most k / (n + 1) <= 1 - target (the split-conformal
    bound). The in-sample rule it replaces (the highest threshold keeping `target` of these
    n) is one order statistic higher for most n < 60, and kept 0.944-0.946 of the held-out
    relevant papers (nested CV, pooled over three seeds) for a 0.95 target.
    """
    ranked = np.sort(positive_probs)
    k = max(1, math.floor((1.0 - target) * (len(ranked) + 1) + 1e-9))
    return float(ranked[min(k, len(ranked)) - 1])


def f1_threshold(probs: FloatArray, y: NDArray[Any]) -> float:
    """The threshold with the best out-of-fold F1 (ties: the lower one, for recall)."""
    best, best_f1 = 0.5, -1.0
    for candidate in np.unique(probs):
        predicted = probs >= candidate
        tp = float((predicted & (y == 1)).sum())
        precision = tp / max(1.0, float(predicted.sum()))
        recall = tp / max(1.0, float((y == 1).sum()))
        f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(candidate), f1
    return best


def prf(predicted: NDArray[Any], actual: NDArray[Any]) -> dict[str, float]:
    tp = float((predicted & actual).sum())
    precision = tp / float(predicted.sum()) if predicted.sum() else 0.0
    recall = tp / float(actual.sum()) if actual.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": int(actual.sum())}
