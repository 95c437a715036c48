"""Optimization tasks: export + parity + CPU candidates, and the TensorRT hand-off to a GPU pool."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from slipway.data.batch_io import read_batch
from slipway.data.reference import load_reference
from slipway.errors import OptimizationError
from slipway.names import Tag
from slipway.optimize.stage import OptimizationOutcome, optimize
from slipway.optimize.tensorrt import failed, skipped
from slipway.registry.base import VersionInfo
from slipway.registry.factory import make_registry
from slipway.release.steps import ReleaseInputs, release_key
from slipway.reporting.markdown import optimization_rows, parity_markdown
from slipway.settings import Settings
from slipway.training.base import TrainedModel


class OptimizationFailed(BaseModel):
    """Export or the FP32 baseline failed: the stage and the cause."""

    stage: str
    cause: str


@task(name="optimize-model", cache_policy=NO_CACHE, timeout_seconds=1800)
def optimize_model(inputs: ReleaseInputs, trained: TrainedModel) -> OptimizationOutcome | OptimizationFailed:
    """Export, parity gate, candidates and selection; published as a Markdown and a table artifact."""
    cfg = inputs.config()
    ref = load_reference(cfg.data)
    frame = read_batch(Path(inputs.data_path))
    calibration = frame.loc[:, list(ref.features)].to_numpy(dtype=np.float32)[: cfg.optimize.calibration_rows]
    work = Settings().work_path() / f"optimize-{release_key(inputs)[:16]}"
    try:
        outcome = optimize(
            trained.module, cfg=cfg.optimize, holdout=ref.holdout_xy(), calibration=calibration, work_dir=work
        )
    except OptimizationError as exc:
        create_markdown_artifact(
            key="onnx-parity", markdown=f"# Optimization FAILED\n\n* {exc}", description="ONNX export"
        )
        return OptimizationFailed(stage=exc.stage, cause=exc.cause)
    create_markdown_artifact(
        key="onnx-parity",
        markdown=parity_markdown(
            outcome.parity, export_sha256=outcome.export.sha256, opset=outcome.export.opset
        ),
        description="ONNX export and parity gate",
    )
    if outcome.selection is not None:
        create_table_artifact(
            key="optimization",
            table=optimization_rows(outcome.selection),
            description=f"Candidate selection: shipped {outcome.selection.shipped}",
        )
    return outcome


TENSORRT_SKIPPED = "skipped (no GPU worker configured)"


@task(name="tensorrt-handoff", cache_policy=NO_CACHE, timeout_seconds=7200)
def tensorrt_handoff(inputs: ReleaseInputs, version: VersionInfo) -> str:
    """Run the `optimize-gpu` deployment on its GPU pool and wait, or record why it was skipped.

    Never estimates a TensorRT number: without a configured GPU deployment the version is tagged skipped.
    A failed GPU run is recorded on the version and reported; the CPU candidate still ships.
    """
    cfg = inputs.config()
    trt = cfg.optimize.tensorrt
    registry = make_registry(Settings(), cfg)
    if not trt.deployment:
        report = skipped("no GPU worker configured")
        registry.annotate(
            model_name=version.name, version=version.version, tags=report.as_tags(), documents={}
        )
        create_markdown_artifact(
            key="tensorrt",
            markdown=f"# {report.reason}\n\nSet `optimize.tensorrt.deployment` in slipway.yaml "
            "to a deployment of `flows/optimize_gpu.py` on a GPU work pool (see README).",
            description="TensorRT",
        )
        return TENSORRT_SKIPPED
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    run = cast(
        FlowRun,
        run_deployment(
            name=trt.deployment,
            parameters={
                "model_name": version.name,
                "version": version.version,
                "precisions": list(trt.precisions),
                "config_path": Path(inputs.config_path).name,
            },
            timeout=trt.timeout_s,
        ),
    )  # called from sync code: returns the FlowRun, not a coroutine
    state = run.state
    if state is not None and state.is_completed():
        return f"built (flow run {run.id} on {trt.deployment})"
    ended = state.name if state is not None else "no state"
    status = f"failed (GPU flow run {run.id} on {trt.deployment} ended {ended})"
    current = registry.get_version(model_name=version.name, version=version.version)
    if Tag.TENSORRT_STATUS not in current.tags:  # the GPU flow records its own precise failure
        registry.annotate(
            model_name=version.name, version=version.version, tags=failed(status).as_tags(), documents={}
        )
    return status
