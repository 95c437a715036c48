"""The training entrypoint contract: `fn(request: TrainingRequest) -> TrainedModel`.

The model contract every later stage relies on: a `torch.nn.Module` in eval mode that maps
float32 features `[N, n_features]` (schema order, raw units) to class logits `[N, n_classes]`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class TrainingRequest:
    """What an entrypoint gets: the validated batch, the schema, its params and a seed."""

    frame: pd.DataFrame
    features: tuple[str, ...]
    label: str
    params: dict[str, Any]
    seed: int


@dataclass
class TrainedModel:
    """What an entrypoint returns: the module plus what to log about how it was trained."""

    module: Any  # torch.nn.Module; typed loosely so this file imports without torch
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


TrainFn = Callable[[TrainingRequest], TrainedModel]
