"""Binary-classification metrics in plain numpy (no heavy imports), keyed by name."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Share of rows whose arg-max class equals the label."""
    return float(np.mean(proba.argmax(axis=1) == y))


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Area under the ROC curve of P(class 1), ties averaged (Mann-Whitney U)."""
    score = proba[:, 1]
    pos, neg = score[y == 1], score[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[y == 1].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def f1(y: np.ndarray, proba: np.ndarray) -> float:
    """F1 score of class 1."""
    pred = proba.argmax(axis=1)
    tp = float(np.sum((pred == 1) & (y == 1)))
    fp = float(np.sum((pred == 1) & (y == 0)))
    fn = float(np.sum((pred == 0) & (y == 1)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "roc_auc": roc_auc,
    "f1": f1,
}


def compute_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Every known metric on one set of predictions."""
    return {name: fn(y, proba) for name, fn in METRICS.items()}
