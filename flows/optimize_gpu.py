"""The optimize-gpu flow: TensorRT engines for one registered version, run on a GPU work pool.

Orchestration only: every step is a task in `tasks/gpu.py` over `slipway.optimize.tensorrt`.
The release flow decides whether to call it (`optimize.tensorrt.deployment`); once it runs, a worker
without TensorRT or a GPU is an error, never a silent skip.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from tasks.gpu import (
    annotate_tensorrt,
    build_and_measure,
    fetch_onnx,
    load_eager_model,
    load_rows,
    ort_reference,
    publish_tensorrt,
)

from slipway.errors import OptimizationError
from slipway.optimize.tensorrt import (
    EngineReport,
    TensorRTReport,
    failed,
    gpu_name,
    parse_precisions,
    summarize,
    tensorrt_version,
    unavailable_reason,
)


def _record(config_path: str, model_name: str, version: str, report: TensorRTReport) -> None:
    annotate_tensorrt(config_path, model_name, version, report)
    publish_tensorrt(report)


@flow(
    name="optimize-gpu",
    description="TensorRT engines for a registered version: build (cached), parity vs ORT FP32, timing vs torch.",
)
def optimize_gpu(
    model_name: str,
    version: str,
    precisions: list[str] = ["fp16"],  # noqa: B006 - shown in the deployment's parameter schema; never mutated
    config_path: str = "slipway.yaml",
) -> dict[str, Any]:
    """Blocking; annotates the version and returns the TensorRTReport as a dict; fails without a GPU/TensorRT, on a build error or a parity miss."""
    wanted = parse_precisions(precisions)
    reason = unavailable_reason()
    if reason is not None:
        raise OptimizationError(
            "tensorrt", f"optimize-gpu needs TensorRT and a CUDA GPU on its worker: {reason}"
        )
    gpu, trt_version = gpu_name(), tensorrt_version()
    onnx_path = fetch_onnx(config_path, model_name, version)
    module = load_eager_model(config_path, model_name, version)
    x, calibration = load_rows(config_path, calibrate="int8" in wanted)
    reference = ort_reference(onnx_path, x)
    engines: list[EngineReport] = []
    try:
        for precision in wanted:
            engines.append(build_and_measure(onnx_path, precision, module, x, reference, calibration))
    except OptimizationError as exc:
        _record(
            config_path, model_name, version, failed(str(exc), gpu=gpu, version=trt_version, engines=engines)
        )
        raise
    report = summarize(engines, gpu=gpu, version=trt_version)
    _record(config_path, model_name, version, report)
    if report.status == "failed":
        raise OptimizationError("tensorrt-parity", report.reason)
    return report.model_dump(mode="json")
