"""Optimization tasks: export + parity + CPU candidates, and the TensorRT hand-off to a GPU pool."""

from __future__ import annotations

from typing import Any, cast

from prefect import task
from prefect.cache_policies import NO_CACHE

from slipway.optimize.stage import OptimizationOutcome
from slipway.registry.factory import make_registry
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence
from slipway.release.outcome import StageOutcome
from slipway.release.stages.optimization import optimize_model
from slipway.release.stages.tensorrt import tensorrt_handoff
from slipway.settings import Settings


@task(name="optimize-model", cache_policy=NO_CACHE, timeout_seconds=1800)
def optimize(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[OptimizationOutcome]:
    """Export, parity gate, candidates and selection (deterministic: no retries)."""
    return optimize_model(ctx, evidence, work_dir=ctx.work_dir("optimize", Settings()))


def run_gpu_deployment(deployment: str, parameters: dict[str, Any], timeout_s: float) -> tuple[bool, str]:
    """Blocking up to timeout_s; runs a Prefect deployment and waits: (completed, "flow run <id> on <name> ended <state>")."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    run = cast(FlowRun, run_deployment(name=deployment, parameters=parameters, timeout=timeout_s))
    state = run.state
    ended = state.name if state is not None else "no state"
    return state is not None and state.is_completed(), f"flow run {run.id} on {deployment} ended {ended}"


@task(name="tensorrt-handoff", cache_policy=NO_CACHE, timeout_seconds=7200)
def tensorrt(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[str]:
    """Run the `optimize-gpu` deployment on its GPU pool and wait, or record why it was skipped."""
    return tensorrt_handoff(
        ctx, evidence, registry=make_registry(Settings(), ctx.config), run_gpu_flow=run_gpu_deployment
    )
