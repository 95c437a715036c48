"""The optimization stage as one call: export, parity gate, candidates, measurement, selection.

Plain Python over files in a work folder; the release flow registers what it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from slipway.config import OptimizeConfig
from slipway.errors import ModelContractError
from slipway.evaluation.metrics import METRICS, PRIMARY
from slipway.evaluation.scoring import ClassOutput, postprocess
from slipway.evaluation.target import Target
from slipway.names import Tag
from slipway.optimize.candidates import Candidate, build_candidates
from slipway.optimize.measure import measure, ort_runner
from slipway.optimize.parity import ParityReport, check_parity
from slipway.optimize.select import Selection, select

ONNX_DIR = "onnx"
EXPORT_ARTIFACT = f"{ONNX_DIR}/model.onnx"


class ExportFacts(BaseModel):
    """What identifies the exported FP32 graph."""

    model_config = ConfigDict(frozen=True)
    sha256: str
    opset: int
    size_bytes: int
    onnx_version: str
    onnxruntime_version: str
    framework: str = Field(description="The model's framework adapter: pytorch, sklearn or onnx.")
    converter: str = Field(description="What wrote the graph: `torch 2.13.0`, `skl2onnx 1.20.0`, or none.")


class OptimizationOutcome(BaseModel):
    """Everything the stage decided, with the files to register (artifact path -> local path)."""

    export: ExportFacts
    parity: ParityReport
    selection: Selection | None = Field(default=None, description="None when parity failed.")
    candidates: list[dict[str, Any]] = Field(default_factory=list)
    artifacts: dict[str, str] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Parity held and a candidate was selected."""
        return self.parity.passed and self.selection is not None

    def shipped_artifact(self) -> str:
        """Artifact path of the shipped ONNX file; ValueError before selection."""
        if self.selection is None:
            raise ValueError("no candidate was selected (parity failed)")
        return f"{ONNX_DIR}/{self.selection.shipped}.onnx"

    def tags(self) -> dict[str, str]:
        """Version tags: export identity, runtimes, parity numbers, shipped candidate and every file's sha256."""
        tags = {
            Tag.ONNX_OPSET: str(self.export.opset),
            Tag.ONNX_SHA256: self.export.sha256,
            Tag.PARITY: "passed" if self.parity.passed else "failed",
            Tag.PARITY_MAX_ABS_ERROR: f"{self.parity.max_abs_error:.3g}",
            Tag.PARITY_MAX_REL_ERROR: f"{self.parity.max_rel_error:.3g}",
        }
        for cand in self.candidates:
            if cand.get("sha256"):
                tags[f"{Tag.ONNX_PREFIX}{cand['name']}.sha256"] = str(cand["sha256"])
        if self.selection is not None:
            tags[Tag.SHIPPED] = self.selection.shipped
            tags[Tag.SHIPPED_ARTIFACT] = self.shipped_artifact()
            tags[Tag.SHIPPED_SHA256] = str(self.selection.row(self.selection.shipped).sha256)
        return tags

    def metrics(self) -> dict[str, float]:
        """Run metrics: p50 per candidate and batch, the primary metric per candidate."""
        out: dict[str, float] = {}
        for row in self.selection.rows if self.selection else []:
            for batch, p50 in row.p50_ms.items():
                out[f"latency_p50_ms_{row.name}_b{batch}"] = p50
            if row.quality is not None:
                out[
                    f"holdout_{self.selection.quality_metric if self.selection else 'quality'}_{row.name}"
                ] = row.quality
        return out


def optimize(
    model: Any,
    *,
    cfg: OptimizeConfig,
    holdout: tuple[np.ndarray, np.ndarray],
    calibration: np.ndarray,
    work_dir: Path,
    target: Target,
    output: ClassOutput = "logits",
) -> OptimizationOutcome:
    """Blocking (~10-20 s); OptimizationError(stage, cause) when export or the FP32 baseline fails.

    The model's framework adapter exports it and answers the parity reference. A parity failure is not
    an exception: the outcome says `passed=False` with the numbers. Parity and each candidate's quality
    are judged on what the model answers (probabilities, or values); `output` is what its graph answers.
    """
    import onnx
    import onnxruntime

    from slipway.frameworks.factory import adapter_for

    adapter = adapter_for(model)
    x, y = holdout
    work_dir.mkdir(parents=True, exist_ok=True)
    exported = adapter.export(model, example=x, path=work_dir / "model.onnx", opset=cfg.opset, target=target)
    facts = ExportFacts(
        sha256=exported.sha256,
        opset=exported.opset,
        size_bytes=exported.size_bytes,
        onnx_version=onnx.__version__,
        onnxruntime_version=onnxruntime.__version__,
        framework=adapter.name,
        converter=exported.converter,
    )
    reference = adapter.raw_outputs(model, x, target=target)
    parity = check_parity(
        reference, exported.path, x, atol=cfg.parity.atol, rtol=cfg.parity.rtol, target=target, output=output
    )
    if not parity.passed:
        return OptimizationOutcome(export=facts, parity=parity)
    candidates = build_candidates(
        exported.path, work_dir / "candidates", names=list(cfg.candidates), calibration=calibration
    )
    built = [c for c in candidates if c.status == "built" and c.path is not None]
    runners = [ort_runner(c.name, c.path, threads=cfg.bench.threads) for c in built if c.path]
    runners.append(adapter.runner(model, threads=cfg.bench.threads, target=target))
    b = cfg.bench
    measurements = measure(
        runners,
        x=x,
        y=y,
        batches=sorted({*b.batches, cfg.rank_batch}),
        warmup=b.warmup,
        rounds=b.rounds,
        iterations=b.iterations,
        load_repeats=b.load_repeats,
        quality=primary_quality(target=target, output=output, y=y),
    )
    selection = select(candidates, measurements, cfg=cfg, references=(adapter.reference,), task=target.task)
    artifacts = {EXPORT_ARTIFACT: str(exported.path)}
    artifacts.update({f"{ONNX_DIR}/{c.name}.onnx": str(c.path) for c in built})
    return OptimizationOutcome(
        export=facts,
        parity=parity,
        selection=selection,
        candidates=[_candidate_doc(c) for c in candidates],
        artifacts=artifacts,
    )


def primary_quality(*, target: Target, output: ClassOutput, y: np.ndarray) -> Callable[[np.ndarray], float]:
    """Pure; scores raw outputs on the holdout by the task's primary metric (NaN when they break the contract)."""
    metric = METRICS[target.task][PRIMARY[target.task]]

    def score(raw: np.ndarray) -> float:
        try:
            answers = postprocess(
                np.asarray(raw, dtype=np.float64), target=target, output=output, rows=len(y)
            )
        except ModelContractError:
            return float("nan")
        return metric.fn(y, answers)

    return score


def _candidate_doc(c: Candidate) -> dict[str, Any]:
    return {
        "name": c.name,
        "status": c.status,
        "sha256": c.sha256,
        "size_bytes": c.size_bytes,
        "build_s": c.build_s,
        "reason": c.reason,
    }
