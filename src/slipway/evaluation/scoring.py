"""Score a model under the model contract, with errors that say how the contract was broken."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from slipway.errors import ModelContractError
from slipway.evaluation.metrics import compute_metrics


def eval_mode(module: Any) -> Any:
    """Switch a module to eval mode where it has one; torch.export programs (MLflow pt2) have none."""
    with contextlib.suppress(AttributeError, NotImplementedError):
        module.eval()
    return module


def predict_proba(module: Any, x: np.ndarray) -> np.ndarray:
    """Class probabilities [N, C] from a module that returns logits [N, C]."""
    import torch

    if not callable(module):
        raise ModelContractError(f"model is a {type(module).__name__}, not a callable torch module")
    eval_mode(module)
    with torch.no_grad():
        try:
            out = module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        except Exception as exc:  # the model's own code failed: report it as a contract breach
            raise ModelContractError(
                f"model failed on input float32[{x.shape[0]}, {x.shape[1]}]: {type(exc).__name__}: {exc}"
            ) from None
    if isinstance(out, (tuple, list)):
        out = out[0]
    try:
        logits = np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # e.g. a dict of outputs: not a logits tensor
        raise ModelContractError(
            f"model output is a {type(out).__name__}, not a logits tensor [{x.shape[0]}, n_classes>=2]: {exc}"
        ) from None
    if logits.ndim != 2 or logits.shape[0] != x.shape[0] or logits.shape[1] < 2:
        raise ModelContractError(
            f"model output has shape {list(logits.shape)}; the contract is logits [{x.shape[0]}, n_classes>=2]"
        )
    if not np.isfinite(logits).all():
        raise ModelContractError("model output contains NaN or Inf on the holdout")
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def evaluate(module: Any, *, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Every metric of the module on (x, y)."""
    return compute_metrics(y, predict_proba(module, x))
