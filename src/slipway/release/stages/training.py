"""Stage 2, the training hand-off: train with the configured entrypoint, or accept a model trained elsewhere."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from slipway.data.batch_io import read_batch
from slipway.evaluation.scoring import ClassOutput, class_output, predict
from slipway.evaluation.target import OutputKind, Target
from slipway.frameworks.factory import adapter_for
from slipway.monitoring.reference import REFERENCE_DOC, DriftReference, build_reference, sample_rows, to_bytes
from slipway.names import FrameworkChoice, Tag
from slipway.registry.base import ModelRegistry
from slipway.release.context import ReleaseContext
from slipway.release.outcome import StageOutcome, table
from slipway.training.base import TrainedModel, TrainingRequest
from slipway.training.entrypoint import load_entrypoint
from slipway.training.params import call_entrypoint


def train_or_accept(ctx: ReleaseContext, *, registry: ModelRegistry) -> StageOutcome[TrainedModel]:
    """Blocking (seconds to minutes); the entrypoint's model on the batch, or `--model-uri` loaded from MLflow.

    A model that cannot be loaded, an entrypoint that fails, or a model of no supported framework (or not
    of `training.framework`) raises (the release ends as an error). The entrypoint may return the bare model.
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
        trained = as_trained(call_entrypoint(fn, request, spec=spec))
        how = f"trained by {ctx.config.training.entrypoint}"
    trained = identify(
        trained,
        framework="auto" if ctx.model_uri else ctx.config.training.framework,  # a URI's flavor says
        configured=ctx.config.training.output,
        target=ctx.reference().target,
    )
    rows = [{"kind": "param", "name": k, "value": str(v)} for k, v in sorted(trained.params.items())]
    rows += [
        {"kind": "training metric", "name": k, "value": f"{v:.4f}"}
        for k, v in sorted(trained.metrics.items())
    ]
    adapter = adapter_for(trained.module)
    tags = {
        Tag.FRAMEWORK: trained.framework,
        Tag.MODEL_CLASS: adapter.describe(trained.module)[:250],
        Tag.MODEL_OUTPUT: str(trained.output),
        **{f"{Tag.VERSION_PREFIX}{pkg}": v for pkg, v in adapter.versions().items()},
    }
    rows.insert(0, {"kind": "model", "name": trained.framework, "value": tags[Tag.MODEL_CLASS]})
    reference = drift_reference(ctx, trained)
    rows.append({"kind": "drift reference", "name": REFERENCE_DOC, "value": f"{reference.rows} rows"})
    return StageOutcome(
        stage="training",
        verdict="passed",
        value=trained,
        tags=tags,
        documents={REFERENCE_DOC: to_bytes(reference)},
        artifacts=(table("training-summary", rows, f"Training hand-off: {how}"),),
    )


def drift_reference(ctx: ReleaseContext, trained: TrainedModel) -> DriftReference:
    """Blocking (reads the batch, runs the model on a sample); the rows `slipway monitor` compares live traffic
    with: a seeded sample of the release's batch (what the model learned from) and the model's answers on it."""
    ref = ctx.reference()
    frame = read_batch(Path(ctx.data_path))
    keep = sample_rows(len(frame), max_rows=ctx.config.monitor.reference_rows, seed=ctx.config.training.seed)
    x = ref.x(frame.iloc[keep])
    output = class_output(trained.output, fallback=ctx.config.training.output)
    outputs = predict(trained.module, x, target=ref.target, output=output)
    return build_reference(
        features=ref.features, x=x, outputs=outputs, task=ref.task, classes=ref.target.classes
    )


def as_trained(result: Any) -> TrainedModel:
    """Pure; an entrypoint's result as a TrainedModel (a bare model is wrapped); ModelContractError naming
    the type of anything that is no model of a supported framework."""
    if isinstance(result, TrainedModel):
        return result
    adapter_for(result)  # raises, naming the type and the supported frameworks
    return TrainedModel(module=result)


def identify(
    trained: TrainedModel, *, framework: FrameworkChoice, configured: ClassOutput, target: Target
) -> TrainedModel:
    """Pure; the model with its framework and what its outputs are (values for regression);
    ModelContractError if it is no supported model, or not of the configured `framework`."""
    adapter = adapter_for(trained.module, framework=framework)
    output: OutputKind = (
        adapter.output_kind(trained.module, configured=configured) if target.classification else "values"
    )
    return replace(trained, framework=adapter.name, output=output)
