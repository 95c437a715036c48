"""Example entrypoint: a PyTorch MLP on the breast-cancer features.

The module standardises its raw inputs itself (mean/std buffers), so the exported model takes
the same raw feature vector a client sends.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from slipway.training.base import TrainedModel, TrainingRequest

DEFAULTS: dict[str, Any] = {
    "hidden": [64, 32],
    "epochs": 80,
    "lr": 3e-3,
    "batch_size": 64,
    "weight_decay": 1e-4,
    "dropout": 0.1,
}


class MLP(nn.Module):
    """Standardise, then Linear/ReLU/Dropout blocks, then class logits."""

    def __init__(
        self, *, mean: np.ndarray, std: np.ndarray, hidden: list[int], n_classes: int, dropout: float
    ):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        layers: list[nn.Module] = []
        width = len(mean)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = (x - self.get_buffer("mean")) / self.get_buffer("std")
        return self.net(scaled)  # type: ignore[no-any-return]


def train(request: TrainingRequest) -> TrainedModel:
    """Full-batch-epoch Adam training; deterministic for a seed on CPU."""
    params = {**DEFAULTS, **request.params}
    torch.manual_seed(request.seed)
    x = request.frame.loc[:, list(request.features)].to_numpy(dtype=np.float32, copy=True)
    y = request.frame[request.label].to_numpy(dtype=np.int64, copy=True)
    std = x.std(axis=0)
    model = MLP(
        mean=x.mean(axis=0),
        std=np.where(std > 0, std, 1.0),
        hidden=list(params["hidden"]),
        n_classes=int(max(2, y.max() + 1)),
        dropout=float(params["dropout"]),
    )
    opt = torch.optim.Adam(
        model.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"])
    )
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(request.seed)
    loss_fn = nn.CrossEntropyLoss()
    loss = torch.tensor(0.0)
    model.train()
    for _ in range(int(params["epochs"])):
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), int(params["batch_size"])):
            idx = order[start : start + int(params["batch_size"])]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    return TrainedModel(module=model, params=params, metrics={"train_loss": float(loss.detach())})
