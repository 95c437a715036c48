"""Stage 7, the TensorRT hand-off: the `optimize-gpu` deployment on a GPU pool, or skipped (said why).

Never estimates a TensorRT number: without a configured GPU deployment the version is tagged skipped.
A failed GPU run is recorded on the version and reported; the CPU candidate still ships (the release
goes on either way: the verdict is passed when engines were built, skipped otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from slipway.names import Tag
from slipway.optimize.tensorrt import failed, skipped
from slipway.registry.base import ModelRegistry
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence, required
from slipway.release.outcome import StageOutcome, markdown
from slipway.release.result import ResultPatch

GpuRun = Callable[[str, dict[str, Any], float], tuple[bool, str]]
"""(deployment, parameters, timeout_s) -> (completed, what ran: "flow run <id> on <deployment> ended <state>")."""

NOT_CONFIGURED = "no GPU worker configured"
TORCH_ONLY = (
    "TensorRT engines are built for PyTorch models only"  # + the framework: ai.onnx.ml ops have no TRT layers
)


def tensorrt_handoff(
    ctx: ReleaseContext, evidence: Evidence, *, registry: ModelRegistry, run_gpu_flow: GpuRun
) -> StageOutcome[str]:
    """Blocking (up to optimize.tensorrt.timeout_s); idempotent tags on the version; never raises for a failed GPU run."""
    version = required(evidence.version, what="a registered version")
    trt = ctx.config.optimize.tensorrt
    framework = evidence.trained.framework if evidence.trained is not None else "pytorch"
    why = (
        NOT_CONFIGURED
        if not trt.deployment
        else (f"{TORCH_ONLY}; this one is {framework}" if framework not in ("", "pytorch") else "")
    )
    if why or not trt.deployment:
        report = skipped(why)
        registry.annotate(
            model_name=version.name, version=version.version, tags=report.as_tags(), documents={}
        )
        status = f"skipped ({why})"
        return StageOutcome(
            stage="tensorrt",
            verdict="skipped",
            value=status,
            reasons=(f"tensorrt: {status}",),
            tags=report.as_tags(),
            patch=ResultPatch(tensorrt=status),
            artifacts=(
                markdown(
                    "tensorrt",
                    f"# {report.reason}\n\nSet `optimize.tensorrt.deployment` in slipway.yaml to a deployment of "
                    "`flows/optimize_gpu.py` on a GPU work pool (see README).",
                    "TensorRT",
                ),
            ),
        )
    parameters = {
        "model_name": version.name,
        "version": version.version,
        "precisions": list(trt.precisions),
        "config_path": Path(ctx.config_path).name,
    }
    completed, what = run_gpu_flow(trt.deployment, parameters, float(trt.timeout_s))
    status = f"built ({what})" if completed else f"failed (GPU {what})"
    if not completed:
        current = registry.get_version(model_name=version.name, version=version.version)
        if Tag.TENSORRT_STATUS not in current.tags:  # the GPU flow records its own precise failure
            registry.annotate(
                model_name=version.name, version=version.version, tags=failed(status).as_tags(), documents={}
            )
    return StageOutcome(
        stage="tensorrt",
        verdict="passed" if completed else "skipped",
        value=status,
        reasons=(f"tensorrt: {status}",),
        patch=ResultPatch(tensorrt=status),
        artifacts=(markdown("tensorrt", f"# TensorRT {status}", "TensorRT"),),
    )
