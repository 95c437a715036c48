"""The training entrypoint contract: `fn(request: TrainingRequest) -> TrainedModel` (or the bare model).

The model contract every later stage relies on: a model of a supported framework (`slipway.frameworks`)
that reads float32 features `[N, n_features]` (schema order, raw units, `request.x()`) and answers, per task:
* classification: one column per class in `request.target.classes` order; a torch module answers logits
  (or probabilities, with `training.output: probabilities`), a scikit-learn classifier its
  `predict_proba` (its `classes_` may be the label values, strings included: they are put in order);
* regression: values `[N]` or `[N, 1]`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from slipway.evaluation.target import OutputKind, Target


@dataclass(frozen=True)
class TrainingRequest:
    """What an entrypoint gets: the validated batch, the schema, the target, its params and a seed."""

    frame: pd.DataFrame
    features: tuple[str, ...]
    label: str
    params: dict[str, Any]
    seed: int
    target: Target

    def x(self) -> np.ndarray:
        """Pure; the batch's features, float32 [N, n_features], in the model's input order."""
        return self.frame.loc[:, list(self.features)].to_numpy(dtype=np.float32, copy=True)

    def y(self) -> np.ndarray:
        """Pure; class indices int64 [N] (classification, `target.classes` order) or values float32 [N]."""
        return self.target.encode(self.frame[self.label])


@dataclass
class TrainedModel:
    """What an entrypoint returns: the model plus what to log about how it was trained.

    `framework` and `output` are filled in by the training stage (the model's adapter), not by entrypoints.
    """

    module: Any  # the model: torch.nn.Module, a scikit-learn estimator or an onnx.ModelProto
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    framework: str = ""  # pytorch, sklearn or onnx
    output: OutputKind | None = None  # what its outputs are: logits, probabilities or values


TrainFn = Callable[[TrainingRequest], TrainedModel]
