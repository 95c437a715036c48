"""The live window `slipway monitor` judges: rows (inputs), the champion's answers on them, and labels when known.

From a batch file (`--data`: the champion answers it here) or from prediction logs (what the servers
answered). Every problem is a MonitorError naming the file, column or count at fault (exit 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from slipway.data.batch_io import read_batch
from slipway.errors import MonitorError
from slipway.evaluation.target import Target, plain_label

NON_FINITE: Final = "<non-finite>"  # the predicted label of a row whose answer was not finite


@dataclass(frozen=True)
class LiveWindow:
    """Live rows in the model's input order, the answers on them, and (when known) their labels."""

    x: np.ndarray  # float32 [n, F]
    outputs: np.ndarray  # probabilities [n, K] (classification) or values [n]; NaN where not finite
    request_ids: tuple[str, ...]
    source: str
    y: np.ndarray | None = None  # encoded labels of the rows in `labelled` (class indices or values)
    labelled: np.ndarray | None = None  # row positions the labels belong to
    labels_given: int = 0
    notes: tuple[str, ...] = ()
    versions: dict[str, int] = field(default_factory=dict)  # model version -> rows it answered

    @property
    def rows(self) -> int:
        """Pure; rows in the window."""
        return int(self.x.shape[0])


def predicted_labels(outputs: np.ndarray, *, task: str, classes: tuple[str, ...]) -> np.ndarray:
    """Pure; what drift compares of the answers: the argmax class label (`NON_FINITE` for a row that is not
    finite) or the value (NaN kept: the caller drops it)."""
    if task == "regression":
        return np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)[:, 0]
    out = np.asarray(outputs, dtype=np.float64)
    if not len(out):
        return np.zeros(0, dtype=str)
    finite: list[bool] = [bool(v) for v in np.all(np.isfinite(out), axis=1)]
    best = np.where(np.isfinite(out), out, -np.inf).argmax(axis=1)
    return np.asarray(
        [classes[i] if ok else NON_FINITE for i, ok in zip(best.tolist(), finite, strict=True)], dtype=str
    )


def feature_matrix(frame: pd.DataFrame, *, features: tuple[str, ...], source: str) -> np.ndarray:
    """Pure; the frame's features as float32 in the model's order; MonitorError naming missing or non-numeric
    columns (a batch whose schema no longer matches the champion)."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise MonitorError(
            f"{source}: column(s) {missing} of the champion's schema are missing "
            f"(the batch has {list(frame.columns)[:20]})"
        )
    bad = [f for f in features if not pd.api.types.is_numeric_dtype(frame[f])]
    if bad:
        raise MonitorError(f"{source}: column(s) {bad} are not numeric; the champion reads numbers there")
    return frame.loc[:, list(features)].to_numpy(dtype=np.float32)


def window_from_batch(
    path: Path,
    *,
    features: tuple[str, ...],
    target: Target,
    answer: Callable[[np.ndarray], np.ndarray],
) -> LiveWindow:
    """Blocking (reads the file, runs the champion); a batch's rows with the champion's answers, and its labels
    when the batch has the label column (a labelled batch)."""
    frame = read_batch(path)
    x = feature_matrix(frame, features=features, source=str(path))
    outputs = answer(x) if len(x) else np.zeros((0, max(len(target.classes), 1)))
    y = labelled = None
    if target.label in frame.columns:
        known = frame[target.label].notna().to_numpy()
        labelled = np.flatnonzero(known)
        y = target.encode(frame.loc[known, target.label])
    return LiveWindow(
        x=x,
        outputs=np.asarray(outputs, dtype=np.float64),
        request_ids=tuple(str(i) for i in range(len(x))),
        source=str(path),
        y=y,
        labelled=labelled,
        labels_given=0 if labelled is None else len(labelled),
    )


def read_labels(path: Path, *, label: str) -> dict[str, object]:
    """Blocking; request id -> label from a CSV/Parquet/JSONL file with a `request_id` column and the project's
    label column (or `label`); MonitorError naming what is missing."""
    if path.suffix.lower() in (".jsonl", ".json"):
        try:
            frame = pd.read_json(path, lines=path.suffix.lower() == ".jsonl")
        except ValueError as exc:
            raise MonitorError(f"{path}: cannot be read as JSON lines: {exc}") from None
    else:
        frame = read_batch(path)
    column = label if label in frame.columns else "label"
    if "request_id" not in frame.columns or column not in frame.columns:
        raise MonitorError(
            f"{path}: a labels file needs columns 'request_id' and {label!r} (or 'label'); it has {list(frame.columns)}"
        )
    known = frame[frame[column].notna()]
    return {str(r): plain_label(v) for r, v in zip(known["request_id"], known[column], strict=True)}


def join_labels(window: LiveWindow, labels: dict[str, object], *, target: Target) -> LiveWindow:
    """Pure; the window with the labels whose request id it logged (delayed ground truth)."""
    positions = [i for i, rid in enumerate(window.request_ids) if rid in labels]
    y = target.encode([labels[window.request_ids[i]] for i in positions]) if positions else None
    return LiveWindow(
        x=window.x,
        outputs=window.outputs,
        request_ids=window.request_ids,
        source=window.source,
        y=y,
        labelled=np.asarray(positions, dtype=np.int64) if positions else None,
        labels_given=len(labels),
        notes=window.notes,
        versions=window.versions,
    )
