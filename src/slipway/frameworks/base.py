"""The framework adapter interface: everything Slipway does with a model that depends on its framework.

Every later stage sees one ONNX contract (`slipway.optimize.export`): input `input` float32
[N, n_features] in schema order, first output `logits` [N, K] (classification, one column per class
in `target.classes` order; logits or probabilities per `output_kind`) or [N] / [N, 1] (regression).
An adapter maps its framework's model onto that contract: the native outputs it answers
(`raw_outputs`) are the ones the exported graph must reproduce (the parity gate compares them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slipway.errors import ModelContractError
from slipway.evaluation.scoring import ClassOutput
from slipway.evaluation.target import Target
from slipway.names import Framework
from slipway.optimize.measure import Runner


@dataclass(frozen=True)
class Exported:
    """One ONNX file under the contract and what made it."""

    path: Path
    sha256: str
    opset: int
    size_bytes: int
    converter: str  # "torch 2.13.0", "skl2onnx 1.20.0", "none (a ready ONNX model)"


class FrameworkAdapter(ABC):
    """One framework's side of the release; stateless, so one instance serves every model."""

    name: ClassVar[Framework]
    flavor: ClassVar[str]  # the MLflow flavor models of this framework are logged and loaded with
    reference: ClassVar[str]  # the candidate-table name of the native model's timing row

    @abstractmethod
    def accepts(self, model: Any) -> bool:
        """Pure; whether `model` is an object of this framework (never imports the framework to say no)."""

    @abstractmethod
    def load(self, uri: str) -> Any:
        """Blocking; the model behind an MLflow model URI of this flavor (tracking URI already set); ModelContractError if unloadable."""

    @abstractmethod
    def log(self, model: Any, *, input_example: np.ndarray) -> Any:
        """Blocking; logs the model as artifact `model` of the active MLflow run; its ModelInfo; ModelContractError if unsavable."""

    @abstractmethod
    def output_kind(self, model: Any, *, configured: ClassOutput) -> ClassOutput:
        """Pure; what a classifier's raw outputs are (`configured` is `training.output`, used where the model cannot say)."""

    @abstractmethod
    def raw_outputs(self, model: Any, x: np.ndarray, *, target: Target) -> np.ndarray:
        """Blocking; the native outputs (float64) the exported graph must reproduce on x; ModelContractError if the model fails."""

    @abstractmethod
    def export(self, model: Any, *, example: np.ndarray, path: Path, opset: int, target: Target) -> Exported:
        """Blocking; writes the contract graph to `path` (overwrites); OptimizationError("export", cause naming the part) if it cannot."""

    @abstractmethod
    def runner(self, model: Any, *, threads: int, target: Target) -> Runner:
        """Pure (loads lazily); the native model as a timing row named `reference`, predicting raw outputs."""

    @abstractmethod
    def describe(self, model: Any) -> str:
        """Pure; what the model is, for lineage (class names, e.g. `Pipeline(ColumnTransformer, LogisticRegression)`)."""

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Blocking (imports); the versions of the packages that make and convert this framework's models."""


def load_logged(uri: str, load: Callable[[str], Any], *, kind: str) -> Any:
    """Blocking; `load(uri)` (an MLflow flavor's loader) with its failures as ModelContractError naming the URI
    and `kind`; a missing framework package (ImportError) is named too."""
    from mlflow.exceptions import MlflowException

    try:
        return load(uri)
    except MlflowException as exc:
        raise ModelContractError(f"cannot load model {uri!r} as {kind}: {exc.message}") from None
    except (OSError, ImportError, AttributeError) as exc:  # ImportError: the flavor's package is not here
        raise ModelContractError(f"cannot load model {uri!r}: {type(exc).__name__}: {exc}") from None
