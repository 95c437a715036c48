"""The parity gate: ONNX Runtime FP32 against the native model on the same rows, numbers named on failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from slipway.errors import ModelContractError
from slipway.evaluation.scoring import ClassOutput, postprocess
from slipway.evaluation.target import Target
from slipway.optimize.export import INPUT_NAME


class ParityReport(BaseModel):
    """Elementwise |ort - ref| <= atol + rtol * |ref| over every row and output (numpy.isclose)."""

    model_config = ConfigDict(frozen=True)
    passed: bool
    rows: int
    atol: float
    rtol: float
    max_abs_error: float
    max_rel_error: float
    worst_row: int = Field(description="Row with the largest excess over the tolerance (or abs error).")
    worst_output: int
    reference_value: float
    candidate_value: float
    mismatched_values: int
    label_agreement: float | None = Field(
        default=None, description="Classification: share of rows where both argmax to the same class."
    )

    def summary(self) -> str:
        """One line with every number a reviewer needs."""
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"parity {verdict} on {self.rows} rows: max abs error {self.max_abs_error:.3g}, "
            f"max rel error {self.max_rel_error:.3g} (atol {self.atol:g}, rtol {self.rtol:g}); "
            f"worst row {self.worst_row} output {self.worst_output}: reference {self.reference_value:.6g} "
            f"vs onnx {self.candidate_value:.6g}; {self.mismatched_values} value(s) out of tolerance"
            + ("" if self.label_agreement is None else f"; label agreement {self.label_agreement:.2%}")
        )


def compare(
    reference: np.ndarray, candidate: np.ndarray, *, atol: float, rtol: float, labels: bool = True
) -> ParityReport:
    """Pure; the parity verdict of two [N, C] (or [N]) output arrays (shape mismatch or non-finite values fail).

    `labels`: the outputs are per-class scores, so the argmax label agreement is reported too.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.ndim == 1 and cand.ndim == 1:
        ref, cand = ref[:, None], cand[:, None]
    if ref.shape != cand.shape or ref.ndim != 2:
        return ParityReport(
            passed=False,
            rows=int(ref.shape[0]) if ref.ndim else 0,
            atol=atol,
            rtol=rtol,
            max_abs_error=float("inf"),
            max_rel_error=float("inf"),
            worst_row=0,
            worst_output=0,
            reference_value=float("nan"),
            candidate_value=float("nan"),
            mismatched_values=int(ref.size),
            label_agreement=0.0 if labels else None,
        )
    finite = np.isfinite(ref) & np.isfinite(cand)  # NaN/inf on either side is a mismatch (isclose)
    with np.errstate(invalid="ignore", over="ignore"):
        abs_err = np.where(finite, np.abs(cand - ref), np.inf)
        bound = atol + rtol * np.abs(np.where(finite, ref, 0.0))
        rel_err = abs_err / np.maximum(np.abs(np.where(finite, ref, 0.0)), np.finfo(np.float64).tiny)
    excess = np.where(finite, abs_err - bound, np.inf)
    row, col = np.unravel_index(int(np.argmax(excess)), excess.shape) if excess.size else (0, 0)
    mismatched = int(np.count_nonzero(excess > 0))
    return ParityReport(
        passed=mismatched == 0 and excess.size > 0,  # no rows checked is no evidence of parity
        rows=int(ref.shape[0]),
        atol=atol,
        rtol=rtol,
        max_abs_error=float(abs_err.max(initial=0.0)),
        max_rel_error=float(rel_err.max(initial=0.0)),
        worst_row=int(row),
        worst_output=int(col),
        reference_value=float(ref[row, col]) if ref.size else float("nan"),
        candidate_value=float(cand[row, col]) if cand.size else float("nan"),
        mismatched_values=mismatched,
        label_agreement=(float(np.mean(ref.argmax(axis=1) == cand.argmax(axis=1))) if len(ref) else 1.0)
        if labels
        else None,
    )


def ort_outputs(path: Path, x: np.ndarray, *, threads: int = 1) -> np.ndarray:
    """Blocking; ONNX Runtime CPU outputs (the first output) for `x`."""
    from slipway.optimize.runtime import open_session

    session = open_session(path, threads=threads)
    return np.asarray(session.run(None, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0])


def check_parity(
    reference: np.ndarray,
    onnx_path: Path,
    x: np.ndarray,
    *,
    atol: float,
    rtol: float,
    target: Target | None = None,
    output: ClassOutput = "logits",
) -> ParityReport:
    """Blocking; the native model's raw outputs on `x` (the holdout; its adapter's `raw_outputs`) vs ORT FP32
    on the exported file; never raises on a mismatch, the report says so.

    With a `target`, both sides are compared as answered (probabilities, or values); else as raw outputs.
    For a classifier the report has the label agreement and the probability tolerance both.
    """
    ref, cand = np.asarray(reference, dtype=np.float64), ort_outputs(onnx_path, x)
    if target is None:
        return compare(ref, cand, atol=atol, rtol=rtol)
    try:
        ref = postprocess(ref, target=target, output=output, rows=len(x))
        cand = postprocess(np.asarray(cand, dtype=np.float64), target=target, output=output, rows=len(x))
    except ModelContractError:
        pass  # compared raw: the shape or non-finite mismatch is reported by compare()
    return compare(ref, cand, atol=atol, rtol=rtol, labels=target.classification)
