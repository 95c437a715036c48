"""Drift per column and of the predictions, by Evidently's statistical tests, corrected for many columns.

Numeric columns use the two-sample Kolmogorov-Smirnov test, the predicted label the chi-square test
(a regressor's predicted value: K-S). Each test's p-value is compared with `alpha / m` (Bonferroni over the
m columns tested, predictions included), so `alpha` bounds the chance that a window with no drift raises
any alarm. Evidently is imported lazily (~4-11 s) and only here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

PREDICTION: Final = "prediction"
NUM_METHOD: Final = "ks"
CAT_METHOD: Final = "chisquare"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's test: the statistic, its p-value, the corrected threshold and both sample sizes."""

    column: str
    statistic: str  # "ks" or "chisquare"
    p_value: float
    threshold: float
    reference_rows: int
    current_rows: int
    is_prediction: bool = False

    @property
    def drifted(self) -> bool:
        """Pure; the p-value is below the corrected threshold (NaN never counts as drift; see `tested`)."""
        return bool(self.p_value < self.threshold)

    @property
    def tested(self) -> bool:
        """Pure; the test produced a p-value."""
        return bool(np.isfinite(self.p_value))

    def as_dict(self) -> dict[str, Any]:
        """Pure; JSON-able, with `drifted`."""
        return {
            "column": self.column,
            "statistic": self.statistic,
            "p_value": self.p_value if self.tested else None,
            "threshold": self.threshold,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "prediction": self.is_prediction,
            "drifted": self.drifted,
        }


@dataclass(frozen=True)
class DriftRun:
    """Every column's result and Evidently's snapshot (for the HTML report)."""

    columns: tuple[ColumnDrift, ...]
    snapshot: Snapshot

    def save_html(self, path: str) -> None:
        """Blocking; Evidently's self-contained HTML report."""
        self.snapshot.save_html(path)


def prediction_column(features: tuple[str, ...]) -> str:
    """Pure; the predictions' column name, never one of the features."""
    name = PREDICTION
    while name in features:
        name = f"_{name}"
    return name


def frames(
    *,
    features: tuple[str, ...],
    ref_x: np.ndarray,
    ref_pred: np.ndarray,
    cur_x: np.ndarray,
    cur_pred: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Pure; the reference and current frames (features + predictions) and the predictions' column name."""
    pred = prediction_column(features)

    def frame(x: np.ndarray, p: np.ndarray) -> pd.DataFrame:
        out = pd.DataFrame(np.asarray(x, dtype=np.float64), columns=list(features))
        out[pred] = p
        return out

    return frame(ref_x, ref_pred), frame(cur_x, cur_pred), pred


def detect_drift(
    *,
    features: tuple[str, ...],
    ref_x: np.ndarray,
    ref_pred: np.ndarray,
    cur_x: np.ndarray,
    cur_pred: np.ndarray,
    categorical_prediction: bool,
    alpha: float,
) -> DriftRun:
    """Blocking (Evidently: 3-5 s per window, most of it building the report's plots; bench/monitor); each feature and the predictions tested at alpha / m."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur, pred = frames(features=features, ref_x=ref_x, ref_pred=ref_pred, cur_x=cur_x, cur_pred=cur_pred)
    numeric = list(features) + ([] if categorical_prediction else [pred])
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=[pred] if categorical_prediction else []
    )
    threshold = alpha / (len(features) + 1)
    report = Report(
        [DataDriftPreset(num_method=NUM_METHOD, cat_method=CAT_METHOD, threshold=threshold)],
        include_tests=True,
    )
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # a predicted label the reference never had (e.g. non-finite answers) divides by a zero expectation:
        # scipy warns and answers p = 0, which is the verdict (drift); the warning is noise to the user
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(
            current_data=Dataset.from_pandas(cur, data_definition=definition),
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
        )
    p_values = value_drift_p_values(snapshot.dict())
    columns = tuple(
        ColumnDrift(
            column=name,
            statistic=CAT_METHOD if (name == pred and categorical_prediction) else NUM_METHOD,
            p_value=p_values.get(name, float("nan")),
            threshold=threshold,
            reference_rows=len(ref),
            current_rows=len(cur),
            is_prediction=name == pred,
        )
        for name in [*features, pred]
    )
    return DriftRun(columns=columns, snapshot=snapshot)


def value_drift_p_values(snapshot: dict[str, Any]) -> dict[str, float]:
    """Pure; column -> p-value of every `ValueDrift` metric in an Evidently snapshot's `dict()`."""
    out: dict[str, float] = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith(":ValueDrift") and "column" in config:
            value = metric.get("value")
            out[str(config["column"])] = float(value) if isinstance(value, (int, float)) else float("nan")
    return out
