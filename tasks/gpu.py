"""TensorRT tasks for the optimize-gpu flow: fetch the version's inputs, build and measure, record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from slipway.config import load_config
from slipway.features.joined import project_reference
from slipway.optimize.parity import ort_outputs
from slipway.optimize.tensorrt import EngineReport, Precision, TensorRTReport, evaluate_precision
from slipway.registry.factory import make_registry
from slipway.settings import Settings
from tasks.retry import transient_only

ONNX_ARTIFACT = "onnx/model.onnx"
REPORT_DOCUMENT = "slipway/tensorrt.json"


def cache_dir() -> Path:
    """Where serialized engines are kept between runs (not created here)."""
    return Settings().home_path() / "trt-cache"


@task(
    name="fetch-onnx",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
    timeout_seconds=600,
)
def fetch_onnx(config_path: str, model_name: str, version: str) -> Path:
    """Blocking; idempotent (overwrites); the version's FP32 ONNX copied under the state folder."""
    settings = Settings()
    registry = make_registry(settings, load_config(Path(config_path)))
    dst = settings.home_path() / "tensorrt" / "onnx" / model_name / version
    return registry.fetch_artifact(model_name=model_name, version=version, path=ONNX_ARTIFACT, dst=dst)


@task(
    name="load-eager-model",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
    timeout_seconds=600,
)
def load_eager_model(config_path: str, model_name: str, version: str) -> Any:
    """Blocking; the version's PyTorch module, the eager baseline TensorRT is timed against."""
    registry = make_registry(Settings(), load_config(Path(config_path)))
    return registry.load_model(uri=f"models:/{model_name}/{version}")


@task(name="load-rows", cache_policy=NO_CACHE, timeout_seconds=300)
def load_rows(config_path: str, calibrate: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Holdout features (parity, timing) and, if `calibrate`, the first `calibration_rows` training-pool rows."""
    cfg = load_config(Path(config_path))
    ref = project_reference(cfg)
    x, _ = ref.holdout_xy()
    if not calibrate:
        return x, None
    pool = ref.pool.loc[:, list(ref.features)].to_numpy(dtype=np.float32)
    return x, pool[: cfg.optimize.calibration_rows]


@task(name="ort-fp32-reference", cache_policy=NO_CACHE, timeout_seconds=300)
def ort_reference(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    """Blocking; ONNX Runtime FP32 (CPU) outputs on the holdout: the reference every engine must match."""
    return ort_outputs(onnx_path, x)


@task(name="tensorrt-engine", cache_policy=NO_CACHE, timeout_seconds=1800)
def build_and_measure(
    onnx_path: Path,
    precision: Precision,
    module: Any,
    x: np.ndarray,
    reference: np.ndarray,
    calibration: np.ndarray | None,
) -> EngineReport:
    """Blocking; one precision built (or reused from the cache), parity-checked and timed; no retries (deterministic)."""
    return evaluate_precision(
        onnx_path=onnx_path,
        precision=precision,
        module=module,
        x=x,
        reference=reference,
        cache_dir=cache_dir(),
        calibration=calibration,
    )


@task(
    name="annotate-tensorrt",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
    timeout_seconds=600,
)
def annotate_tensorrt(config_path: str, model_name: str, version: str, report: TensorRTReport) -> None:
    """Blocking; idempotent; `slipway.tensorrt.*` tags on the version, the full report as a run document."""
    registry = make_registry(Settings(), load_config(Path(config_path)))
    registry.annotate(
        model_name=model_name,
        version=version,
        tags=report.as_tags(),
        documents={REPORT_DOCUMENT: report.model_dump(mode="json")},
    )


@task(name="publish-tensorrt", cache_policy=NO_CACHE)
def publish_tensorrt(report: TensorRTReport) -> None:
    """The report as the `tensorrt` table artifact."""
    create_table_artifact(key="tensorrt", table=report.as_rows(), description=report.reason)
