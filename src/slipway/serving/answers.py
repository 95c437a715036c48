"""One number and one label per answered row: what the canary analysis compares between two arms.

* binary: the probability of the positive class (column 1), and the argmax label;
* multiclass: the probability of the predicted (top) class, and the argmax label;
* regression: the predicted value (no label).
Numpy only: the server (its metrics), the local router (from JSON answers), the release (offline
baselines) and the simulator all summarize rows with these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NO_LABEL = -1


def row_scores(task: str, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pure; (score per row float64, label index per row int64; NO_LABEL for regression or a non-finite row)."""
    out = np.asarray(outputs, dtype=np.float64)
    if task == "regression":
        values = out.reshape(len(out), -1)[:, 0] if out.ndim == 2 else out
        return values, np.full(len(values), NO_LABEL, dtype=np.int64)
    finite = np.isfinite(out).all(axis=1) if len(out) else np.zeros(0, dtype=bool)
    safe = np.where(np.isfinite(out), out, -np.inf)
    labels = (
        np.where(finite, safe.argmax(axis=1), NO_LABEL).astype(np.int64)
        if len(out)
        else np.zeros(0, dtype=np.int64)
    )
    if task == "binary":
        scores = out[:, 1] if len(out) else np.zeros(0)
    else:
        scores = np.where(finite, safe.max(axis=1), np.nan) if len(out) else np.zeros(0)
    return np.asarray(scores, dtype=np.float64), labels


def answer_rows(task: str, answer: dict[str, object]) -> tuple[list[float], list[int]]:
    """Pure; the rows of one /predict JSON answer summarized (nulls become NaN; a malformed answer: no rows)."""
    if task == "regression":
        values = answer.get("predictions")
        if not isinstance(values, list):
            return [], []
        floats = [float(v) if isinstance(v, (int, float)) else float("nan") for v in values]
        return floats, [NO_LABEL] * len(floats)
    rows = answer.get("probabilities")
    if not isinstance(rows, list):
        return [], []
    matrix = [_row(r) for r in rows]
    width = max((len(r) for r in matrix), default=0)
    if not matrix or any(len(r) != width for r in matrix):
        return [], []
    scores, labels = row_scores(task, np.asarray(matrix, dtype=np.float64))
    return scores.tolist(), labels.tolist()


def _row(row: object) -> Sequence[float]:
    """A probability row as a list: a dict keyed by class (in class order) or a plain list; nulls are NaN."""
    values = list(row.values()) if isinstance(row, dict) else list(row) if isinstance(row, list) else []
    return [float(v) if isinstance(v, (int, float)) else float("nan") for v in values]
