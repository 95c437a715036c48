"""Stage 4, ONNX export + parity gate + CPU candidates: what ships, or why nothing can."""

from __future__ import annotations

from pathlib import Path

from slipway.data.batch_io import read_batch
from slipway.errors import OptimizationError
from slipway.names import Stage, Tag
from slipway.optimize.stage import OptimizationOutcome, optimize
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence, model_output, required
from slipway.release.outcome import Artifact, StageOutcome, markdown, table
from slipway.release.result import ResultPatch
from slipway.reporting.markdown import optimization_rows, parity_markdown

EXPORT_STAGES = ("export", "onnx-check")  # OptimizationError stages that mean "this model cannot be exported"


def optimize_model(
    ctx: ReleaseContext, evidence: Evidence, *, work_dir: Path
) -> StageOutcome[OptimizationOutcome]:
    """Blocking (~10-20 s); rejected at `export` (cannot export), `optimize` (no FP32 baseline) or `parity`."""
    trained = required(evidence.trained, what="a trained model")
    ref = ctx.reference()
    cfg = ctx.config.optimize
    frame = read_batch(Path(ctx.data_path))
    calibration = ref.x(frame)[: cfg.calibration_rows]
    try:
        outcome = optimize(
            trained.module,
            cfg=cfg,
            holdout=ref.holdout_xy(),
            calibration=calibration,
            work_dir=work_dir,
            target=ref.target,
            output=model_output(ctx, evidence),
        )
    except OptimizationError as exc:
        stage: Stage = "export" if exc.stage in EXPORT_STAGES else "optimize"
        return StageOutcome(
            stage=stage,
            verdict="rejected",
            cause=f"{exc.stage}: {exc.cause}",
            reasons=(f"FAIL: {exc.stage}: {exc.cause}",),
            documents={"slipway/optimization_error.json": {"stage": exc.stage, "cause": exc.cause}},
            artifacts=(markdown("onnx-parity", f"# Optimization FAILED\n\n* {exc}", "ONNX export"),),
        )
    tags = outcome.tags()
    summary = {
        "parity": outcome.parity.summary(),
        "onnx_sha256": outcome.export.sha256,
        "opset": outcome.export.opset,
    }
    artifacts: list[Artifact] = [
        markdown(
            "onnx-parity",
            parity_markdown(outcome.parity, export_sha256=outcome.export.sha256, opset=outcome.export.opset),
            "ONNX export and parity gate",
        )
    ]
    if outcome.selection is None or not outcome.passed:
        return StageOutcome(
            stage="parity",
            verdict="rejected",
            value=outcome,
            cause=outcome.parity.summary(),
            reasons=(f"FAIL: {outcome.parity.summary()}",),
            tags=tags,
            documents={"slipway/optimization.json": outcome.model_dump(mode="json")},
            files={k: Path(v) for k, v in outcome.artifacts.items()},
            patch=ResultPatch(optimization=summary),
            artifacts=tuple(artifacts),
        )
    selection = outcome.selection
    artifacts.append(
        table(
            "optimization", optimization_rows(selection), f"Candidate selection: shipped {selection.shipped}"
        )
    )
    summary |= {
        "shipped": selection.shipped,
        "artifact": outcome.shipped_artifact(),
        "sha256": tags[Tag.SHIPPED_SHA256],
    }
    return StageOutcome(
        stage="optimize",
        verdict="passed",
        value=outcome,
        reasons=(outcome.parity.summary(), *selection.reasons[:1]),
        tags=tags,
        documents={"slipway/optimization.json": outcome.model_dump(mode="json")},
        files={k: Path(v) for k, v in outcome.artifacts.items()},
        patch=ResultPatch(optimization=summary),
        artifacts=tuple(artifacts),
    )
