"""Which adapter handles a model: by the object itself, or by the flavors of its MLflow model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slipway.errors import ModelContractError
from slipway.frameworks.base import FrameworkAdapter
from slipway.names import FRAMEWORKS, FrameworkChoice


def adapters() -> tuple[FrameworkAdapter, ...]:
    """Pure; every adapter, in the order a model's MLflow flavors are tried."""
    from slipway.frameworks.onnx_model import OnnxAdapter
    from slipway.frameworks.pytorch import PyTorchAdapter
    from slipway.frameworks.sklearn import SklearnAdapter

    return (PyTorchAdapter(), SklearnAdapter(), OnnxAdapter())


def adapter_for(model: Any, *, framework: FrameworkChoice = "auto") -> FrameworkAdapter:
    """Pure; the adapter of `model`; ModelContractError naming its type (and `training.framework` when it disagrees)."""
    found = next((a for a in adapters() if a.accepts(model)), None)
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    if found is None:
        raise ModelContractError(
            f"the model is a {kind}, which Slipway cannot release: it releases torch.nn.Module (pytorch), "
            "scikit-learn estimators and Pipelines (sklearn) and onnx.ModelProto (onnx)"
        )
    if framework not in ("auto", found.name):
        raise ModelContractError(
            f"training.framework is {framework}, but the model is a {kind} ({found.name}): "
            f"set training.framework: {found.name} (or auto)"
        )
    return found


def adapter_for_flavors(flavors: Iterable[str], *, uri: str) -> FrameworkAdapter:
    """Pure; the adapter of the first supported flavor; ModelContractError naming the model's flavors and the supported ones."""
    present = set(flavors)
    for adapter in adapters():
        if adapter.flavor in present:
            return adapter
    own = sorted(present - {"python_function"}) or sorted(present)
    raise ModelContractError(
        f"model {uri!r} has the MLflow flavor(s) {own}; Slipway releases the flavors "
        f"{[a.flavor for a in adapters()]} (frameworks {list(FRAMEWORKS)}); log LightGBM/XGBoost scikit-learn "
        "models with mlflow.sklearn, or convert a model to ONNX"
    )
