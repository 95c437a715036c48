"""PyTorch: a `torch.nn.Module` mapping float32 [N, n_features] to logits/probabilities or values."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slipway.errors import ModelContractError
from slipway.evaluation.scoring import ClassOutput, eval_mode
from slipway.evaluation.target import Target
from slipway.frameworks.base import Exported, FrameworkAdapter, load_logged
from slipway.names import Framework
from slipway.optimize.measure import Runner, torch_runner


def _torch_version() -> str:
    import torch

    return str(torch.__version__).split("+")[0]


class PyTorchAdapter(FrameworkAdapter):
    """torch modules (and MLflow pt2 programs): exported with torch.export + the dynamo ONNX exporter."""

    name: ClassVar[Framework] = "pytorch"
    flavor: ClassVar[str] = "pytorch"
    reference: ClassVar[str] = "torch_eager"

    def accepts(self, model: Any) -> bool:
        """Pure; whether `model` is an object of this framework (never imports the framework to say no)."""
        return any(c.__module__.split(".")[0] == "torch" for c in type(model).__mro__)

    def load(self, uri: str) -> Any:
        """Blocking; the model behind an MLflow model URI of this flavor (tracking URI already set); ModelContractError if unloadable."""
        import mlflow

        return load_logged(
            uri, lambda u: mlflow.pytorch.load_model(u, map_location="cpu"), kind="a PyTorch model"
        )

    def log(self, model: Any, *, input_example: np.ndarray) -> Any:
        """Blocking; logs the model as artifact `model` of the active MLflow run; its ModelInfo; ModelContractError if unsavable."""
        import mlflow

        try:
            return mlflow.pytorch.log_model(
                model,
                name="model",
                input_example=input_example,
                pip_requirements=[f"torch=={_torch_version()}"],
            )
        except Exception as exc:  # pt2 = torch.export: any failure means "cannot be saved"
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ModelContractError(
                f"MLflow cannot save the model (pt2 via torch.export): {type(exc).__name__}: {text}"
            ) from None

    def output_kind(self, model: Any, *, configured: ClassOutput) -> ClassOutput:
        """Pure; a module's outputs are what `training.output` says."""
        return configured

    def raw_outputs(self, model: Any, x: np.ndarray, *, target: Target) -> np.ndarray:
        """Blocking; the module's first output on x (float32) in eval mode, no grad, as float64."""
        import torch

        if not callable(model):
            raise ModelContractError(f"model is a {type(model).__name__}, not a callable torch module")
        eval_mode(model)
        with torch.no_grad():
            try:
                out = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
            except Exception as exc:  # the model's own code failed: report it as a contract breach
                raise ModelContractError(
                    f"model failed on input float32[{x.shape[0]}, {x.shape[1]}]: {type(exc).__name__}: {exc}"
                ) from None
        if isinstance(out, (tuple, list)):
            out = out[0]
        try:
            return np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out, dtype=np.float64)
        except (TypeError, ValueError) as exc:  # e.g. a dict of outputs: not a tensor
            raise ModelContractError(f"model output is a {type(out).__name__}, not a tensor: {exc}") from None

    def export(self, model: Any, *, example: np.ndarray, path: Path, opset: int, target: Target) -> Exported:
        """Blocking (~2-5 s); torch.export then ONNX; OptimizationError("export", cause) if the module cannot export."""
        from slipway.optimize.export import export_onnx

        done = export_onnx(model, example=example, path=path, opset=opset)
        return Exported(
            path=done.path,
            sha256=done.sha256,
            opset=done.opset,
            size_bytes=done.size_bytes,
            converter=f"torch {done.torch_version}",
        )

    def runner(self, model: Any, *, threads: int, target: Target) -> Runner:
        """Pure (loads lazily); eager torch, no grad, `threads` intra-op threads."""
        return torch_runner(self.reference, model, threads=threads)

    def describe(self, model: Any) -> str:
        """Pure; the module's class name."""
        return type(model).__name__

    def versions(self) -> dict[str, str]:
        """Blocking (imports torch); the torch version."""
        return {"torch": _torch_version()}
