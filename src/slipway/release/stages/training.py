"""Stage 2, the training hand-off: train with the configured entrypoint, or accept a model trained elsewhere."""

from __future__ import annotations

from pathlib import Path

from slipway.data.batch_io import read_batch
from slipway.registry.base import ModelRegistry
from slipway.release.context import ReleaseContext
from slipway.release.outcome import StageOutcome, table
from slipway.training.base import TrainedModel, TrainingRequest
from slipway.training.entrypoint import load_entrypoint
from slipway.training.params import call_entrypoint


def train_or_accept(ctx: ReleaseContext, *, registry: ModelRegistry) -> StageOutcome[TrainedModel]:
    """Blocking (seconds to minutes); the entrypoint's model on the batch, or `--model-uri` loaded from MLflow.

    A model that cannot be loaded or an entrypoint that fails raises (the release ends as an error).
    """
    if ctx.model_uri:
        trained = TrainedModel(
            module=registry.load_model(uri=ctx.model_uri), params={"source_model_uri": ctx.model_uri}
        )
        how = f"accepted {ctx.model_uri}"
    else:
        ref = ctx.reference()
        request = TrainingRequest(
            frame=read_batch(Path(ctx.data_path)),
            features=ref.features,
            label=ref.label,
            params=dict(ctx.config.training.params),
            seed=ctx.config.training.seed,
            target=ref.target,
        )
        spec = ctx.config.training.entrypoint
        fn = load_entrypoint(spec, project_dir=ctx.config.base_dir)
        trained = call_entrypoint(fn, request, spec=spec)
        how = f"trained by {ctx.config.training.entrypoint}"
    rows = [{"kind": "param", "name": k, "value": str(v)} for k, v in sorted(trained.params.items())]
    rows += [
        {"kind": "training metric", "name": k, "value": f"{v:.4f}"}
        for k, v in sorted(trained.metrics.items())
    ]
    return StageOutcome(
        stage="training",
        verdict="passed",
        value=trained,
        artifacts=(table("training-summary", rows, f"Training hand-off: {how}"),),
    )
