"""The example MLP trained small (real architecture, seconds to train) for the export, parity, candidate and
registry tests, and torch held to one intra-op thread while they run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from slipway.data.generate import make_batch
from slipway.data.reference import Reference
from slipway.examples.breast_cancer import MLP, train
from slipway.training.base import TrainingRequest


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models train many times slower with intra-op threads fighting other processes for 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_mlp(ref: Reference) -> MLP:
    """The example MLP trained for 2 epochs on 48 rows: float32 [N, 30] -> logits [N, 2]."""
    request = TrainingRequest(
        frame=make_batch(ref, rows=48, seed=0),
        features=ref.features,
        label=ref.label,
        params={"epochs": 2, "hidden": [8, 4]},
        seed=0,
        target=ref.target,
    )
    module = train(request).module
    assert isinstance(module, MLP)
    return module
