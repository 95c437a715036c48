"""The training entrypoint contract: `fn(request: TrainingRequest) -> TrainedModel`.

The model contract every later stage relies on: a `torch.nn.Module` in eval mode that maps float32
features `[N, n_features]` (schema order, raw units) to, per task:
* classification: logits (or probabilities, with `training.output: probabilities`) `[N, n_classes]`,
  one column per class in `request.target.classes` order;
* regression: values `[N]` or `[N, 1]`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from slipway.evaluation.target import Target


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
    """What an entrypoint returns: the module plus what to log about how it was trained."""

    module: Any  # torch.nn.Module; typed loosely so this file imports without torch
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


TrainFn = Callable[[TrainingRequest], TrainedModel]
