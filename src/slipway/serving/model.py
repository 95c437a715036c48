"""The model behind the server: an ONNX Runtime session over a bundle, and the softmax every caller shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from slipway.errors import UsageError
from slipway.serving.bundle import Bundle, BundleMeta


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Pure; row-wise softmax in float64; a row with NaN or +inf logits comes out NaN."""
    z = logits.astype(np.float64)
    if np.isfinite(z).all():
        return _softmax(z)
    with np.errstate(invalid="ignore", over="ignore"):
        return _softmax(z)


def open_session(path: Any, *, threads: int) -> Any:
    """Blocking; a CPU InferenceSession with `threads` intra-op threads; UsageError if ORT rejects the file."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/InvalidProtobuf types
        raise UsageError(f"{path}: onnxruntime cannot load it: {exc}") from None


@dataclass(frozen=True)
class ModelRuntime:
    """A loaded bundle: its metadata and a session whose `run` is thread-safe."""

    bundle: Bundle
    session: Any

    @property
    def n_features(self) -> int:
        """Width of one input row."""
        return len(self.bundle.meta.features)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Blocking, thread-safe; float32 [N, n_features] -> raw outputs float32: [N, n_classes], or [N] values."""
        meta = self.bundle.meta
        out = np.asarray(self.session.run([meta.output_name], {meta.input_name: x})[0], dtype=np.float32)
        if meta.task == "regression" and out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        expected = (len(x),) if meta.task == "regression" else (len(x), len(meta.classes))
        if out.shape != expected:
            raise RuntimeError(f"model returned shape {out.shape}, expected {expected}")
        return out


def load_runtime(bundle: Bundle, *, threads: int) -> ModelRuntime:
    """Blocking; opens the bundle's session and checks its I/O names and widths; UsageError naming a mismatch."""
    meta = bundle.meta
    session = open_session(bundle.onnx_path, threads=threads)
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if meta.input_name not in inputs or meta.output_name not in outputs:
        raise UsageError(
            f"{bundle.onnx_path}: inputs {sorted(inputs)} / outputs {sorted(outputs)} lack the bundle's "
            f"input_name {meta.input_name!r} / output_name {meta.output_name!r}"
        )
    width, n_out = inputs[meta.input_name][-1], outputs[meta.output_name][-1]
    if isinstance(width, int) and width != len(meta.features):
        raise UsageError(
            f"{bundle.onnx_path}: input width {width}, model.json lists {len(meta.features)} features"
        )
    out_shape = outputs[meta.output_name]
    if meta.task != "regression" and isinstance(n_out, int) and n_out != len(meta.classes):
        raise UsageError(
            f"{bundle.onnx_path}: {n_out} output columns, model.json lists {len(meta.classes)} classes"
        )
    if meta.task == "regression" and len(out_shape) == 2 and isinstance(n_out, int) and n_out != 1:
        raise UsageError(f"{bundle.onnx_path}: {n_out} output columns; a regression model answers one value")
    return ModelRuntime(bundle=bundle, session=session)


def answers(meta: BundleMeta, raw: np.ndarray) -> np.ndarray:
    """Pure; what the model answers for raw outputs: probabilities [N, K] (logits softmaxed, probabilities
    as they are) or values [N]; a non-finite row stays non-finite."""
    if meta.task == "regression":
        return (
            np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)[:, 0]
            if np.ndim(raw) == 2
            else np.asarray(raw, dtype=np.float64)
        )
    if meta.output == "probabilities":
        return np.asarray(raw, dtype=np.float64)
    return softmax(np.asarray(raw))
