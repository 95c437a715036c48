"""Training hand-off task: train in-flow (cached), or accept a model trained elsewhere."""

from __future__ import annotations

from prefect import task

from slipway.registry.factory import make_registry
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence
from slipway.release.outcome import StageOutcome
from slipway.release.stages.training import train_or_accept
from slipway.settings import Settings
from slipway.training.base import TrainedModel
from tasks.cache_keys import training_key


@task(name="train-model", cache_key_fn=training_key, persist_result=True, timeout_seconds=3600)
def train(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[TrainedModel]:
    """The entrypoint on the batch, cached on (data, training config, training code); or `--model-uri`."""
    return train_or_accept(ctx, registry=make_registry(Settings(), ctx.config))
