"""One number and one label per answered row: what the canary analysis compares between two arms.

* binary: the probability of the positive class (column 1), and the argmax label;
* multiclass: the probability of the predicted (top) class, and the argmax label;
* regression: the predicted value (no label).
Numpy only: the server (its metrics), the release (offline baselines) and the simulator summarize rows
with `row_scores`; the local router and the servability check read a JSON answer with `answer_columns`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

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


@dataclass(frozen=True)
class AnswerColumns:
    """A /predict JSON answer as columns: `labels` and `probabilities` (one dict keyed by class, or a list, per
    row) of a classifier, `values` of a regressor; None where the answer has no such column. `missing`: rows
    answered `{"error": ..., "status": 404, "key": ...}` (entities the online store lacks), left out of the
    columns."""

    labels: list[Any] | None = None
    probabilities: list[Any] | None = None
    values: list[Any] | None = None
    missing: int = 0


def is_missing_row(row: object) -> bool:
    """Pure; True for the row of an entity the online store lacked (`slipway.serving.app.missing_row`)."""
    return isinstance(row, dict) and row.get("status") == 404 and "error" in row


def answer_columns(answer: object) -> AnswerColumns:
    """Pure; the columns of a /predict answer: per-row objects (`{"label", "probabilities"}` or `{"value"}`,
    missing entities' rows counted and left out), or the columnar answer of images built before them
    (`predictions` labels or values, `probabilities` rows). Anything else (mixed or malformed rows): no columns."""
    if not isinstance(answer, dict):
        return AnswerColumns()
    rows = answer.get("predictions")
    if isinstance(rows, list) and any(is_missing_row(r) for r in rows):
        found = [r for r in rows if not is_missing_row(r)]
        columns = answer_columns({"predictions": found}) if found else AnswerColumns()
        return replace(columns, missing=len(rows) - len(found))
    if isinstance(rows, list) and any(isinstance(r, dict) for r in rows):
        if not all(isinstance(r, dict) for r in rows):
            return AnswerColumns()
        if all("probabilities" in r for r in rows):
            return AnswerColumns(
                labels=[r.get("label") for r in rows], probabilities=[r["probabilities"] for r in rows]
            )
        if all("value" in r for r in rows):
            return AnswerColumns(values=[r["value"] for r in rows])
        return AnswerColumns()
    probabilities = answer.get("probabilities")
    if isinstance(probabilities, list):
        return AnswerColumns(labels=rows if isinstance(rows, list) else None, probabilities=probabilities)
    return AnswerColumns(values=rows) if isinstance(rows, list) else AnswerColumns()
