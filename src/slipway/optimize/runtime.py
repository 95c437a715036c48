"""ONNX Runtime sessions with pinned threads, the one way every stage opens a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slipway.errors import OptimizationError


def open_session(
    path: Path | bytes,
    *,
    threads: int = 1,
    optimization: str = "all",
    save_optimized_to: Path | None = None,
) -> Any:
    """Blocking; a CPU InferenceSession (of a file, or a serialized model) with `threads` intra-op threads;
    OptimizationError if ORT rejects it."""
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = levels[optimization]
    opts.log_severity_level = 3
    if save_optimized_to is not None:
        opts.optimized_model_filepath = str(save_optimized_to)
    try:
        source = path if isinstance(path, bytes) else str(path)
        return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        what = "the model" if isinstance(path, bytes) else path.name
        raise OptimizationError("onnxruntime", f"cannot load {what}: {exc}") from None
