"""Training hand-off tasks: train in-flow, or import a model trained elsewhere."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from slipway.registry.factory import make_registry
from slipway.release.steps import ReleaseInputs, import_model, train_model
from slipway.settings import Settings
from slipway.training.base import TrainedModel
from tasks.cache_keys import training_key
from tasks.retry import transient_only


@task(name="train-model", cache_key_fn=training_key, persist_result=True, timeout_seconds=3600)
def train(inputs: ReleaseInputs) -> TrainedModel:
    """The configured entrypoint on the batch; cached on (data, training config, training code)."""
    return train_model(inputs)


@task(
    name="import-model",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
    timeout_seconds=600,
)
def import_external(inputs: ReleaseInputs, model_uri: str) -> TrainedModel:
    """Load a model trained elsewhere from its MLflow URI."""
    registry = make_registry(Settings(), inputs.config())
    return import_model(model_uri, registry=registry)


@task(name="publish-training", cache_policy=NO_CACHE)
def publish_training(trained: TrainedModel, metrics: dict[str, float]) -> None:
    """Params and holdout metrics as a Prefect table artifact."""
    rows = [{"kind": "param", "name": k, "value": str(v)} for k, v in sorted(trained.params.items())]
    rows += [{"kind": "holdout metric", "name": k, "value": f"{v:.4f}"} for k, v in sorted(metrics.items())]
    create_table_artifact(key="training-summary", table=rows, description="Training hand-off")
