"""What the canary's scores mean for this model, and the offline shifts the quality gate approved.

`OutputSpec` says the task and the range a valid score lies in (probabilities: [0, 1]; a regression's
values: the reference label range widened by its span on each side). `Baselines` are the differences
between the champion and the challenger measured OFFLINE on the holdout by the same statistics as
the live checks, so a change the gate approved is not mistaken for a silent shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slipway.serving.answers import NO_LABEL


@dataclass(frozen=True)
class OutputSpec:
    """The task and the valid score range of the model under analysis."""

    task: str = "binary"
    classes: int = 2
    low: float = 0.0
    high: float = 1.0

    @property
    def classification(self) -> bool:
        """Pure; binary or multiclass."""
        return self.task != "regression"

    @classmethod
    def regression(cls, value_range: tuple[float, float]) -> OutputSpec:
        """Pure; valid values: the label range widened by its span on each side."""
        lo, hi = value_range
        span = (hi - lo) or max(abs(lo), 1.0)
        return cls(task="regression", classes=0, low=lo - span, high=hi + span)


@dataclass(frozen=True)
class Baselines:
    """Offline (holdout) differences between the stable's and the canary's answers."""

    score_ks: float = 0.0  # two-sample KS D between the two models' scores
    label_tvd: float = 0.0  # total variation distance between their predicted-label distributions
    agreement: float = 1.0  # share of holdout rows where both predict the same label
    paired_median: float = 0.0  # |median| of the per-row score differences (canary - stable)
    paired_spread: float = 0.0  # regression: median |canary - stable| per row, in units of the stable's std
    score_std_ratio: float = 1.0  # the canary's score std / the stable's (a sharper retrain: far below 1)


BINARY = OutputSpec()  # the default spec: P(positive class) in [0, 1]
NO_BASELINES = Baselines()  # no offline differences: the two models answer alike


def label_distribution(labels: np.ndarray, classes: int) -> np.ndarray:
    """Pure; the share of each class among the labelled rows (zeros when there are none)."""
    valid = labels[(labels != NO_LABEL) & (labels >= 0) & (labels < classes)]
    counts = np.bincount(valid.astype(np.int64), minlength=classes).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def offline_baselines(
    *, stable: tuple[np.ndarray, np.ndarray], canary: tuple[np.ndarray, np.ndarray], spec: OutputSpec
) -> Baselines:
    """Pure; the live checks' statistics on the holdout: (scores, labels) of each model, row for row."""
    from slipway.canary.checks import ks_two_sample

    (s_scores, s_labels), (c_scores, c_labels) = stable, canary
    d, _ = ks_two_sample(c_scores, s_scores)
    tvd = agreement = 0.0
    if spec.classification:
        tvd = 0.5 * float(
            np.abs(
                label_distribution(c_labels, spec.classes) - label_distribution(s_labels, spec.classes)
            ).sum()
        )
        agreement = float(np.mean(c_labels == s_labels)) if len(c_labels) else 1.0
    else:
        agreement = 1.0
    diff = c_scores - s_scores
    s_std = float(np.std(s_scores))
    sd = s_std or 1.0
    return Baselines(
        paired_spread=round(float(np.median(np.abs(diff))) / sd, 6)
        if len(diff) and not spec.classification
        else 0.0,
        score_ks=round(float(d), 4),
        label_tvd=round(tvd, 4),
        agreement=round(agreement, 4),
        paired_median=round(abs(float(np.median(c_scores - s_scores))) if len(c_scores) else 0.0, 6),
        score_std_ratio=round(min(1.0, float(np.std(c_scores)) / s_std), 6) if s_std > 0 else 1.0,
    )
