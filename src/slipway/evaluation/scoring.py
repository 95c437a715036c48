"""Score a model under the model contract, with errors that say how the contract was broken.

The contract per task: classification models map float32 [N, n_features] to logits or probabilities
[N, n_classes] (the framework adapter, or `training.output`, says which); regression models to values
[N] or [N, 1].
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import numpy as np

from slipway.errors import ModelContractError
from slipway.evaluation.metrics import compute_metrics
from slipway.evaluation.target import Target

ClassOutput = Literal["logits", "probabilities"]


def class_output(said: str | None, *, fallback: ClassOutput) -> ClassOutput:
    """Pure; `said` (an adapter's word, or a version's tag) when it is a classifier's output kind, else `fallback`."""
    if said == "logits":
        return "logits"
    if said == "probabilities":
        return "probabilities"
    return fallback


def eval_mode(module: Any) -> Any:
    """Switch a module to eval mode where it has one; torch.export programs (MLflow pt2) have none."""
    with contextlib.suppress(AttributeError, NotImplementedError):
        module.eval()
    return module


def softmax(logits: np.ndarray) -> np.ndarray:
    """Pure; row-wise softmax in float64 (stable for huge logits)."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def postprocess(raw: np.ndarray, *, target: Target, output: ClassOutput, rows: int) -> np.ndarray:
    """Pure; probabilities [N, K] (classification) or values [N] (regression) from raw outputs, checked."""
    if not target.classification:
        if raw.ndim == 2 and raw.shape[1] == 1:
            raw = raw[:, 0]
        if raw.shape != (rows,):
            raise ModelContractError(
                f"model output has shape {list(raw.shape)}; a regression model answers values [{rows}] or [{rows}, 1]"
            )
        if not np.isfinite(raw).all():
            raise ModelContractError("model output contains NaN or Inf on the holdout")
        return raw
    k = len(target.classes)
    if raw.ndim != 2 or raw.shape != (rows, k):
        raise ModelContractError(
            f"model output has shape {list(raw.shape)}; the contract is {output} [{rows}, {k}] "
            f"(one column per class, in the order {list(target.classes)})"
        )
    if not np.isfinite(raw).all():
        raise ModelContractError("model output contains NaN or Inf on the holdout")
    if output == "logits":
        return softmax(raw)
    if (raw < -1e-6).any() or not np.allclose(raw.sum(axis=1), 1.0, atol=1e-3):
        raise ModelContractError(
            "training.output is probabilities, but the model's rows are not probabilities (negative or not "
            "summing to 1): set training.output: logits if the model returns logits"
        )
    return np.asarray(np.clip(raw, 0.0, 1.0))


def predict(model: Any, x: np.ndarray, *, target: Target, output: ClassOutput = "logits") -> np.ndarray:
    """Blocking; probabilities [N, K] or values [N] under the model contract, by the model's framework adapter.

    `output` is `training.output`, for the models that cannot say what they answer (torch modules).
    """
    from slipway.frameworks.factory import adapter_for

    adapter = adapter_for(model)
    raw = adapter.raw_outputs(model, x, target=target)
    kind = adapter.output_kind(model, configured=output)
    return postprocess(raw, target=target, output=kind, rows=x.shape[0])


def evaluate(
    module: Any, *, x: np.ndarray, y: np.ndarray, target: Target, output: ClassOutput = "logits"
) -> dict[str, float]:
    """Every metric of the task for the module on (x, y encoded)."""
    return compute_metrics(target.task, y, predict(module, x, target=target, output=output))
