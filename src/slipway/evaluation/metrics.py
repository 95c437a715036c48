"""Metrics per task in plain numpy (no heavy imports), each with its direction.

Classification metrics take (y: class indices [N], proba: probabilities [N, K]); regression metrics
take (y: values [N], pred: values [N]). `METRICS[task]` lists what a task can gate on; `PRIMARY[task]`
is the metric the champion comparison and the optimizer's quality budget use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slipway.names import Task

EPS = 1e-15


@dataclass(frozen=True)
class Metric:
    """A metric function and whether larger values are better."""

    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Share of rows whose arg-max class equals the label."""
    return float(np.mean(proba.argmax(axis=1) == y))


def _rank_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `score` for the boolean `positive`, ties averaged (Mann-Whitney U)."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(len(score), dtype=np.float64)
    # average ranks over runs of equal scores
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(score)]])
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e - 1) / 2.0 + 1.0
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary: area under the ROC curve of P(positive class) (column 1)."""
    return _rank_auc(proba[:, 1], y == 1)


def roc_auc_ovr(y: np.ndarray, proba: np.ndarray) -> float:
    """Multiclass: one-vs-rest ROC AUC per class, averaged over the classes present on both sides (macro)."""
    scores = [_rank_auc(proba[:, k], y == k) for k in range(proba.shape[1])]
    finite = [s for s in scores if not np.isnan(s)]
    return float(np.mean(finite)) if finite else float("nan")


def _f1_of(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    tp = float(np.sum((pred == k) & (y == k)))
    fp = float(np.sum((pred == k) & (y != k)))
    fn = float(np.sum((pred != k) & (y == k)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def f1(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary: F1 of the positive class (column 1)."""
    return _f1_of(y, proba.argmax(axis=1), 1)


def macro_f1(y: np.ndarray, proba: np.ndarray) -> float:
    """Multiclass: unweighted mean of per-class F1 over the classes in the labels or the predictions."""
    pred = proba.argmax(axis=1)
    present = np.union1d(np.unique(y), np.unique(pred))
    return float(np.mean([_f1_of(y, pred, int(k)) for k in present])) if present.size else float("nan")


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log probability of the true class (probabilities clipped to [1e-15, 1])."""
    p = np.clip(proba[np.arange(len(y)), y.astype(np.int64)], EPS, 1.0)
    return float(-np.mean(np.log(p)))


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((pred.astype(np.float64) - y) ** 2)))


def mae(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(pred.astype(np.float64) - y)))


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination (1 - SSE/SST; NaN for a constant label)."""
    y64 = y.astype(np.float64)
    sst = float(np.sum((y64 - y64.mean()) ** 2))
    return float("nan") if sst == 0 else 1.0 - float(np.sum((pred - y64) ** 2)) / sst


METRICS: dict[Task, dict[str, Metric]] = {
    "binary": {
        "accuracy": Metric(accuracy, True),
        "roc_auc": Metric(roc_auc, True),
        "f1": Metric(f1, True),
        "log_loss": Metric(log_loss, False),
    },
    "multiclass": {
        "accuracy": Metric(accuracy, True),
        "macro_f1": Metric(macro_f1, True),
        "roc_auc_ovr": Metric(roc_auc_ovr, True),
        "log_loss": Metric(log_loss, False),
    },
    "regression": {
        "rmse": Metric(rmse, False),
        "mae": Metric(mae, False),
        "r2": Metric(r2, True),
    },
}
PRIMARY: dict[Task, str] = {"binary": "accuracy", "multiclass": "accuracy", "regression": "rmse"}


def compute_metrics(task: Task, y: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """Every metric of the task on one set of predictions (probabilities [N, K] or values [N])."""
    return {name: m.fn(y, outputs) for name, m in METRICS[task].items()}


def unknown_metrics(task: Task, names: list[str]) -> list[str]:
    """Pure; the names that are not metrics of `task`, sorted."""
    return sorted(set(names) - set(METRICS[task]))
