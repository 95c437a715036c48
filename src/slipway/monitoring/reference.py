"""The drift reference a release records: a seeded sample of the rows the model learned from, and its answers.

Recorded at training time (the training stage's `REFERENCE_DOC` document, an `.npz` on the version's run),
so `slipway monitor` compares live traffic with the data the serving champion saw, not with whatever the
project's reference file holds today. Predictions are class labels (as the server answers them) or values.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

import numpy as np

from slipway.errors import ModelContractError

REFERENCE_DOC: Final = "slipway/monitor/reference.npz"
FORMAT: Final = 1


@dataclass(frozen=True)
class DriftReference:
    """Rows the model learned from (float32 [N, F] in the model's input order) and its predictions on them."""

    features: tuple[str, ...]
    x: np.ndarray
    predictions: np.ndarray  # class labels as str (classification) or float64 values (regression)
    task: str
    classes: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        """Pure; how many reference rows."""
        return int(self.x.shape[0])


def sample_rows(n: int, *, max_rows: int, seed: int) -> np.ndarray:
    """Pure; sorted positions of a seeded sample of at most `max_rows` of `n` rows (all rows when fewer)."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:max_rows])


def build_reference(
    *, features: tuple[str, ...], x: np.ndarray, outputs: np.ndarray, task: str, classes: tuple[object, ...]
) -> DriftReference:
    """Pure; rows `x` with the model's `outputs` on them (probabilities [N, K] -> the argmax class label as
    the server answers it; values [N] -> values)."""
    names = tuple(str(c) for c in classes)
    out = np.asarray(outputs)
    if task == "regression":
        predictions = out.reshape(len(out), -1)[:, 0].astype(np.float64)
    else:
        predictions = np.asarray([names[i] for i in out.argmax(axis=1)], dtype=str)
    return DriftReference(
        features=features,
        x=np.asarray(x, dtype=np.float32),
        predictions=predictions,
        task=task,
        classes=names,
    )


def to_bytes(ref: DriftReference) -> bytes:
    """Pure; the reference as a compressed `.npz` (no pickles)."""
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        format=np.asarray(FORMAT),
        features=np.asarray(ref.features, dtype=str),
        x=ref.x,
        predictions=ref.predictions,
        task=np.asarray(ref.task),
        classes=np.asarray(ref.classes, dtype=str),
    )
    return buf.getvalue()


def from_bytes(blob: bytes, *, source: str) -> DriftReference:
    """Pure; a reference `to_bytes` wrote; ModelContractError naming `source` when it is not one."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            fmt = int(z["format"])
            if fmt != FORMAT:
                raise ModelContractError(
                    f"{source}: drift reference format {fmt}, this Slipway reads {FORMAT}"
                )
            task = str(z["task"])
            predictions = z["predictions"]
            return DriftReference(
                features=tuple(str(f) for f in z["features"]),
                x=z["x"].astype(np.float32),
                predictions=predictions.astype(np.float64)
                if task == "regression"
                else predictions.astype(str),
                task=task,
                classes=tuple(str(c) for c in z["classes"]),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise ModelContractError(f"{source}: not a drift reference ({type(exc).__name__}: {exc})") from exc
