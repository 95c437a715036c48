"""Build the CPU candidates from the exported FP32 model: ORT-optimized FP32, INT8 dynamic, INT8 static QDQ, INT4.

A candidate that cannot be built is recorded with its stage and cause and the others go on;
only the FP32 baseline is required (its failure is an OptimizationError).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from slipway.errors import OptimizationError
from slipway.hashing import file_sha256
from slipway.optimize.export import INPUT_NAME, check_onnx
from slipway.optimize.runtime import open_session

Status = Literal["built", "unsupported", "failed"]


@dataclass(frozen=True)
class Candidate:
    """One candidate file (or why there is none)."""

    name: str
    status: Status
    path: Path | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    build_s: float = 0.0
    reason: str = ""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The quantizers log and warn a lot at INFO; keep the release log readable."""
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.getLogger().setLevel(level)


def _built(name: str, path: Path, start: float, reason: str = "") -> Candidate:
    check_onnx(path)
    open_session(path)  # ORT must load what we ship
    return Candidate(
        name=name,
        status="built",
        path=path,
        sha256=file_sha256(path),
        size_bytes=path.stat().st_size,
        build_s=round(time.perf_counter() - start, 3),
        reason=reason,
    )


def build_fp32(exported: Path, out_dir: Path) -> Candidate:
    """Blocking; ORT graph optimizations (extended: portable across CPUs) saved to a file; OptimizationError if ORT rejects it."""
    start = time.perf_counter()
    out = out_dir / "fp32.onnx"
    open_session(exported, optimization="extended", save_optimized_to=out)
    return _built("fp32", out, start, reason="ORT extended graph optimizations, saved offline")


def _preprocessed(exported: Path, out_dir: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # keyed by content: a reused out_dir must never quantize a previous export's weights
    pre = out_dir / f"preprocessed-{file_sha256(exported)[:16]}.onnx"
    if not pre.exists():
        with _quiet():
            quant_pre_process(str(exported), str(pre), skip_symbolic_shape=False)
    return pre


def build_int8_dynamic(exported: Path, out_dir: Path) -> Candidate:
    """Blocking; dynamic INT8 (weights int8, activations quantized per call); a failure is a `failed` candidate."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    start = time.perf_counter()
    out = out_dir / "int8_dynamic.onnx"
    try:
        with _quiet():
            quantize_dynamic(str(_preprocessed(exported, out_dir)), str(out), weight_type=QuantType.QInt8)
        return _built("int8_dynamic", out, start, reason="ORT quantize_dynamic, QInt8 weights")
    except Exception as exc:
        return Candidate(name="int8_dynamic", status="failed", reason=f"quantize:int8_dynamic: {exc}")


def build_int8_static(exported: Path, out_dir: Path, *, calibration: np.ndarray) -> Candidate:
    """Blocking; static INT8 in QDQ format calibrated (MinMax) on training rows; a failure is a `failed` candidate."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self, rows: np.ndarray) -> None:
            chunks = [rows[i : i + 32] for i in range(0, len(rows), 32)]
            self._it = iter([{INPUT_NAME: np.ascontiguousarray(c, dtype=np.float32)} for c in chunks])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    start = time.perf_counter()
    out = out_dir / "int8_static_qdq.onnx"
    if len(calibration) == 0:
        return Candidate(
            name="int8_static_qdq", status="failed", reason="quantize:int8_static_qdq: no calibration rows"
        )
    try:
        with _quiet():
            quantize_static(
                str(_preprocessed(exported, out_dir)),
                str(out),
                _Reader(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
            )
        return _built(
            "int8_static_qdq",
            out,
            start,
            reason=f"ORT quantize_static QDQ, MinMax calibration on {len(calibration)} training rows",
        )
    except Exception as exc:
        return Candidate(name="int8_static_qdq", status="failed", reason=f"quantize:int8_static_qdq: {exc}")


def build_int4_weight_only(exported: Path, out_dir: Path) -> Candidate:
    """Blocking; INT4 weight-only (ORT MatMulNBits, block 32); `unsupported` with the reason when no layer qualifies."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    start = time.perf_counter()
    out = out_dir / "int4_weight_only.onnx"
    try:
        model = onnx.load(str(_preprocessed(exported, out_dir)))
        ops = [n.op_type for n in model.graph.node]
        with _quiet():
            quantizer = MatMulNBitsQuantizer(model, block_size=32, is_symmetric=True)
            quantizer.process()
        quantized = sum(1 for n in quantizer.model.model.graph.node if n.op_type == "MatMulNBits")
        if quantized == 0:
            gemms = ops.count("Gemm")
            return Candidate(
                name="int4_weight_only",
                status="unsupported",
                reason=(
                    "ORT INT4 weight-only (MatMulNBits) quantizes MatMul weights only; this graph has "
                    f"{ops.count('MatMul')} MatMul and {gemms} Gemm node(s), so nothing would be INT4"
                ),
            )
        quantizer.model.save_model_to_file(str(out), use_external_data_format=False)
        return _built(
            "int4_weight_only", out, start, reason=f"MatMulNBits block 32 on {quantized} MatMul node(s)"
        )
    except Exception as exc:
        return Candidate(name="int4_weight_only", status="failed", reason=f"quantize:int4_weight_only: {exc}")


def build_candidates(
    exported: Path, out_dir: Path, *, names: list[str], calibration: np.ndarray
) -> list[Candidate]:
    """Blocking; every requested candidate, FP32 first; OptimizationError only if the FP32 baseline fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = [build_fp32(exported, out_dir)]
    except OptimizationError as exc:
        raise OptimizationError("optimize:fp32", exc.cause) from None
    for name in names:
        if name == "fp32":
            continue
        if name == "int8_dynamic":
            result.append(build_int8_dynamic(exported, out_dir))
        elif name == "int8_static_qdq":
            result.append(build_int8_static(exported, out_dir, calibration=calibration))
        elif name == "int4_weight_only":
            result.append(build_int4_weight_only(exported, out_dir))
        else:
            raise OptimizationError("optimize", f"unknown candidate {name!r}")
    return result
