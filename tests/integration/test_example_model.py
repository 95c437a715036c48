"""Behaviour of the example entrypoint: learns clean data, is fooled by flipped labels, is deterministic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from slipway.config import PipelineConfig
from slipway.data.generate import Corruption, make_batch
from slipway.data.reference import Reference
from slipway.evaluation.scoring import evaluate
from slipway.examples.breast_cancer import MLP, train
from slipway.training.base import TrainedModel, TrainingRequest
from tests.support.torch_models import one_torch_thread

__all__ = ["one_torch_thread"]  # a fixture, shared

# three trainings of the example MLP: about 5 s on a busy 2-core machine
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]

ROWS = 400


def _train(ref: Reference, frame: pd.DataFrame, *, seed: int = 42, **params: object) -> TrainedModel:
    request = TrainingRequest(
        frame=frame, features=ref.features, label=ref.label, params=params, seed=seed, target=ref.target
    )
    return train(request)


@pytest.fixture(scope="module")
def clean_model(ref: Reference) -> TrainedModel:
    return _train(ref, make_batch(ref, rows=ROWS, seed=1))


def test_clean_batch_meets_the_default_quality_floors(ref: Reference, clean_model: TrainedModel) -> None:
    x, y = ref.holdout_xy()
    metrics = evaluate(clean_model.module, x=x, y=y, target=ref.target)
    floors = PipelineConfig().quality_gate.thresholds
    assert metrics["accuracy"] >= 0.9 >= floors["accuracy"] - 1e-9, metrics
    assert metrics["roc_auc"] >= 0.95 >= floors["roc_auc"] - 1e-9, metrics


def test_trained_model_honours_the_model_contract(ref: Reference, clean_model: TrainedModel) -> None:
    module = clean_model.module
    assert isinstance(module, MLP)
    assert module.training is False  # returned in eval mode
    x, _ = ref.holdout_xy()
    with torch.no_grad():
        out = module(torch.from_numpy(x))
    assert out.dtype == torch.float32
    assert tuple(out.shape) == (len(x), 2)
    # raw features in: the module standardises with the batch's own statistics
    batch = make_batch(ref, rows=ROWS, seed=1)[list(ref.features)].to_numpy(dtype=np.float32)
    assert np.allclose(module.mean.numpy(), batch.mean(axis=0), rtol=1e-5)
    # what it reports about its training
    assert clean_model.params["epochs"] == 80
    assert np.isfinite(clean_model.metrics["train_loss"])


def test_flipped_labels_give_a_model_worse_than_chance(ref: Reference) -> None:
    flipped = make_batch(ref, rows=ROWS, seed=1, corrupt=Corruption.flipped_labels)
    x, y = ref.holdout_xy()
    metrics = evaluate(_train(ref, flipped).module, x=x, y=y, target=ref.target)
    assert metrics["accuracy"] < 0.5, metrics
    assert metrics["roc_auc"] < 0.5, metrics


def test_same_seed_gives_identical_outputs(ref: Reference) -> None:
    frame = make_batch(ref, rows=200, seed=3)
    x, _ = ref.holdout_xy()
    xt = torch.from_numpy(x)
    a = _train(ref, frame, seed=5, epochs=5).module
    b = _train(ref, frame, seed=5, epochs=5).module
    c = _train(ref, frame, seed=6, epochs=5).module
    with torch.no_grad():
        out_a, out_b, out_c = a(xt), b(xt), c(xt)
    assert torch.equal(out_a, out_b)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.allclose(out_a, out_c)  # the seed actually matters
