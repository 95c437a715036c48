"""Second example entrypoint: a small CNN on scikit-learn's bundled 8x8 digits (bigger than the MLP).

The module takes the flat raw pixel vector a client sends (float32 `[N, 64]`, values 0-16),
scales and reshapes it to `[N, 1, 8, 8]` itself, and returns 10 class logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from slipway.training.base import TrainedModel, TrainingRequest

FEATURES: tuple[str, ...] = tuple(f"pixel_{i}" for i in range(64))
LABEL = "target"
PIXEL_MAX = 16.0
DEFAULTS: dict[str, Any] = {
    "channels": [32, 64],
    "hidden": 128,
    "epochs": 8,
    "lr": 2e-3,
    "batch_size": 64,
    "weight_decay": 1e-4,
}


class DigitsCNN(nn.Module):
    """Scale, reshape to one 8x8 channel, two 3x3 conv/ReLU blocks, then Linear/ReLU/Linear to logits."""

    def __init__(self, *, channels: list[int], hidden: int, n_classes: int = 10):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3), nn.ReLU(), nn.Conv2d(c1, c2, kernel_size=3), nn.ReLU()
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * 4 * 4, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = (x / PIXEL_MAX).reshape(-1, 1, 8, 8)
        return self.head(self.features(images))  # type: ignore[no-any-return]


def load_digits_frame() -> pd.DataFrame:
    """Blocking (reads sklearn's bundled file); 1797 rows: `pixel_0..pixel_63` (float32) and `target` (int64)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    frame = pd.DataFrame(np.asarray(bunch.data, dtype=np.float32), columns=list(FEATURES))
    frame[LABEL] = np.asarray(bunch.target, dtype=np.int64)
    return frame


def split_digits(
    frame: pd.DataFrame, *, train_fraction: float = 0.75, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pure; a stratified (per digit) train/holdout split, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    train_idx: list[int] = []
    for _, group in frame.groupby(LABEL, sort=True):
        n = round(len(group) * train_fraction)
        train_idx.extend(rng.choice(group.index.to_numpy(), size=n, replace=False).tolist())
    mask = frame.index.isin(train_idx)
    return frame.loc[mask].reset_index(drop=True), frame.loc[~mask].reset_index(drop=True)


def train(request: TrainingRequest) -> TrainedModel:
    """Blocking (seconds); mini-batch Adam on the request's frame; deterministic for a seed on CPU."""
    params = {**DEFAULTS, **request.params}
    torch.manual_seed(request.seed)
    x = torch.from_numpy(request.frame.loc[:, list(request.features)].to_numpy(dtype=np.float32, copy=True))
    y = torch.from_numpy(request.frame[request.label].to_numpy(dtype=np.int64, copy=True))
    model = DigitsCNN(channels=list(params["channels"]), hidden=int(params["hidden"]))
    opt = torch.optim.Adam(
        model.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"])
    )
    gen = torch.Generator().manual_seed(request.seed)
    loss_fn = nn.CrossEntropyLoss()
    loss = torch.tensor(0.0)
    batch = int(params["batch_size"])
    model.train()
    for _ in range(int(params["epochs"])):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    model.eval()
    return TrainedModel(module=model, params=params, metrics={"train_loss": float(loss.detach())})
