"""Training entrypoint of diabetes-regression: a PyTorch MLP (written by `slipway init`; yours to edit).

Classification: cross-entropy on class logits, one column per class in `request.target.classes`
order. Regression: mean squared error on a standardised label, one output value. The module
standardises its raw inputs (and un-standardises a regression output) itself, so the exported
model takes the same raw feature vector a client sends and answers in the label's own units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt
from torch import nn

from slipway.training.base import TrainedModel, TrainingRequest


class Params(BaseModel):
    """`training.params` of this entrypoint: a key it does not know, or a value of the wrong type, is a
    config error naming the key before the release starts."""

    model_config = ConfigDict(extra="forbid", strict=True)
    hidden: list[PositiveInt] = Field(default=[64, 32], description="Width of each hidden layer.")
    epochs: PositiveInt = Field(default=80, description="Passes over the batch.")
    lr: PositiveFloat = Field(default=3e-3, description="Adam's learning rate.")
    batch_size: PositiveInt = Field(default=64, description="Rows per gradient step.")
    weight_decay: NonNegativeFloat = Field(default=1e-4, description="Adam's L2 penalty.")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="Dropout after each hidden layer.")


DEFAULTS: dict[str, Any] = Params().model_dump()


class MLP(nn.Module):
    """Standardise, Linear/ReLU/Dropout blocks, then one output per class (or one value, rescaled)."""

    def __init__(
        self,
        *,
        mean: np.ndarray,
        std: np.ndarray,
        hidden: list[int],
        n_out: int,
        dropout: float,
        y_mean: float = 0.0,
        y_std: float = 1.0,
    ):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.register_buffer("y_mean", torch.tensor(y_mean, dtype=torch.float32))
        self.register_buffer("y_std", torch.tensor(y_std, dtype=torch.float32))
        layers: list[nn.Module] = []
        width = len(mean)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)
        self.regression = n_out == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net((x - self.get_buffer("mean")) / self.get_buffer("std"))
        if self.regression:
            return out[:, 0] * self.get_buffer("y_std") + self.get_buffer("y_mean")  # type: ignore[no-any-return]
        return out  # type: ignore[no-any-return]


def train(request: TrainingRequest, params: Params | None = None) -> TrainedModel:
    """Mini-batch Adam training; deterministic for a seed on CPU (`params`: request.params, checked)."""
    p = params if params is not None else Params.model_validate(request.params)
    torch.manual_seed(request.seed)
    x, y = request.x(), request.y()
    std = x.std(axis=0)
    classification = request.target.classification
    y_mean = 0.0 if classification else float(y.mean())
    y_std = 1.0 if classification else float(y.std()) or 1.0
    model = MLP(
        mean=x.mean(axis=0),
        std=np.where(std > 0, std, 1.0),
        hidden=list(p.hidden),
        n_out=len(request.target.classes) if classification else 1,
        dropout=p.dropout,
        y_mean=y_mean,
        y_std=y_std,
    )
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    xt = torch.from_numpy(x)
    yt = (
        torch.from_numpy(y) if classification else torch.from_numpy(((y - y_mean) / y_std).astype(np.float32))
    )
    gen = torch.Generator().manual_seed(request.seed)
    loss = torch.tensor(0.0)
    model.train()
    for _ in range(p.epochs):
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), p.batch_size):
            idx = order[start : start + p.batch_size]
            opt.zero_grad()
            net_out = model.net((xt[idx] - model.get_buffer("mean")) / model.get_buffer("std"))
            if classification:
                loss = nn.functional.cross_entropy(net_out, yt[idx])
            else:
                loss = nn.functional.mse_loss(net_out[:, 0], yt[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    model.eval()
    return TrainedModel(module=model, params=p.model_dump(), metrics={"train_loss": float(loss.detach())})
