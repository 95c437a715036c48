"""TensorRT engines: build (cached per key), run, parity against ORT FP32, GPU timing vs torch eager.

Runs only where `tensorrt` imports and a CUDA GPU is visible (`unavailable_reason()` is None).
Every heavy import (torch, tensorrt) happens inside a function: importing this module costs nothing
on a CPU machine, and no number here is ever estimated: without a GPU there are no numbers at all.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from slipway.errors import OptimizationError
from slipway.hashing import file_sha256
from slipway.names import Tag
from slipway.optimize.export import INPUT_NAME
from slipway.optimize.parity import ParityReport, compare

Precision = Literal["fp16", "int8"]
Status = Literal["built", "skipped", "failed"]

NOT_INSTALLED = "tensorrt is not installed (pip install -e '.[gpu]' on a GPU worker)"
# (atol, rtol) per precision, numpy.isclose semantics against ORT FP32. fp16 keeps ~3 significant digits;
# the int8 pair is a starting point, not a measurement: review it on the first real GPU run.
TOLERANCES: dict[str, tuple[float, float]] = {"fp16": (1e-2, 1e-2), "int8": (1e-1, 1e-1)}
MAX_BATCH = 1024
BENCH_BATCHES = (1, 1024)
WORKSPACE_BYTES = 1 << 30
CALIBRATION_BATCH = 32
TAG = Tag.TENSORRT_PREFIX

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- availability


def _gpu_problem() -> str | None:
    import torch

    if torch.version.cuda is None:
        return f"no CUDA GPU visible: torch {torch.__version__} is a CPU-only build (install a CUDA build)"
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
        return (
            f"no CUDA GPU visible: torch.cuda.is_available() is False (torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, CUDA_VISIBLE_DEVICES={visible}; check the driver)"
        )
    return None


def unavailable_reason() -> str | None:
    """Non-blocking probe; None when TensorRT can build and run here, else every missing piece, named."""
    reasons: list[str] = []
    try:
        import tensorrt  # noqa: F401
    except ModuleNotFoundError as exc:
        reasons.append(NOT_INSTALLED if exc.name == "tensorrt" else f"tensorrt cannot be imported: {exc}")
    except (ImportError, OSError) as exc:  # the wheel is there, its CUDA/TensorRT libraries are not
        reasons.append(f"tensorrt is installed but cannot load: {exc}")
    gpu = _gpu_problem()
    if gpu:
        reasons.append(gpu)
    return "; ".join(reasons) or None


def _tensorrt() -> Any:
    reason = unavailable_reason()
    if reason is not None:
        raise OptimizationError("tensorrt", reason)
    import tensorrt

    return tensorrt


def gpu_name() -> str:
    """Non-blocking; the name of the current CUDA device (requires a visible GPU)."""
    import torch

    return str(torch.cuda.get_device_name(torch.cuda.current_device()))


def tensorrt_version() -> str:
    """Non-blocking; the installed TensorRT version; OptimizationError where TensorRT is unavailable."""
    return str(_tensorrt().__version__)


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class EngineKey:
    """What makes a serialized engine reusable: same ONNX bytes, TensorRT, GPU, precision and profile."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    precision: str
    max_batch: int = MAX_BATCH
    opt_batch: int = MAX_BATCH
    calibration_sha256: str = ""

    def digest(self) -> str:
        """Pure; sha256 over every field in canonical JSON."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def file_name(self) -> str:
        """Pure; `<precision>-<onnx sha[:12]>-<digest[:16]>.engine`; any changed field changes it."""
        safe = "".join(c if c.isalnum() else "_" for c in self.precision)
        return f"{safe}-{self.onnx_sha256[:12]}-{self.digest()[:16]}.engine"


@dataclass(frozen=True)
class EngineResult:
    """A deserialized engine, where its plan lives, and what getting it cost."""

    key: EngineKey
    path: Path
    engine: Any  # tensorrt.ICudaEngine
    build_s: float  # seconds to build and serialize (miss) or to read and deserialize (hit)
    cache_hit: bool
    runtime: Any  # the tensorrt.Runtime that owns `engine`; kept alive with it


@lru_cache(maxsize=1)
def _logger() -> Any:
    """One process-wide TensorRT logger (TensorRT keeps the first one it sees) that remembers errors."""
    trt = _tensorrt()
    errors = (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR)
    base: Any = trt.ILogger

    class _Logger(base):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity in errors:
                self.errors.append(msg)
                _log.error("tensorrt: %s", msg)
            elif severity == trt.ILogger.Severity.WARNING:
                _log.warning("tensorrt: %s", msg)

    return _Logger()


def _calibrator(trt: Any, rows: np.ndarray, batch: int) -> Any:
    import torch

    base: Any = trt.IInt8EntropyCalibrator2

    class _EntropyCalibrator(base):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # a trampoline class must init its base
            usable = len(rows) // batch * batch
            self._batches = [rows[i : i + batch] for i in range(0, usable, batch)]
            self._device = torch.empty((batch, rows.shape[1]), dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return 1  # explicit batch: the calibration profile fixes the shape (Polygraphy returns 1 too)

        def get_batch(self, names: list[str]) -> list[int] | None:
            if not self._batches:
                return None
            self._device.copy_(torch.from_numpy(self._batches.pop(0)))
            torch.cuda.synchronize()
            return [int(self._device.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return None  # the engine cache already keys on the calibration rows

        def write_calibration_cache(self, cache: Any) -> None:
            return None

    return _EntropyCalibrator()


def _errors(logger: Any, mark: int) -> str:
    return "; ".join(logger.errors[mark:]) or "TensorRT reported no detail"


def _serialize(
    trt: Any, *, onnx_path: Path, precision: str, calibration: np.ndarray | None, max_batch: int, opt: int
) -> bytes:
    logger = _logger()
    mark = len(logger.errors)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: every network is explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        found = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        detail = "; ".join(found) if found else _errors(logger, mark)
        raise OptimizationError("tensorrt-parse", f"ONNX parser rejected {onnx_path.name}: {detail}")
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if names != [INPUT_NAME]:
        raise OptimizationError("tensorrt-parse", f"inputs are {names}; the contract is ['{INPUT_NAME}']")
    features = tuple(int(d) for d in network.get_input(0).shape)[1:]
    if any(d < 0 for d in features):
        raise OptimizationError("tensorrt-build", f"only the batch axis may be dynamic, got {features}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (1, *features), (opt, *features), (max_batch, *features))
    config.add_optimization_profile(profile)
    config.set_flag(trt.BuilderFlag.FP16)
    calibrator = None
    if precision == "int8":
        assert calibration is not None  # checked by build_engine
        if calibration.shape[1:] != features:
            raise OptimizationError(
                "tensorrt-calibrate", f"calibration rows are {calibration.shape[1:]}, input is {features}"
            )
        batch = min(CALIBRATION_BATCH, len(calibration))
        calib_profile = builder.create_optimization_profile()
        calib_profile.set_shape(INPUT_NAME, *[(batch, *features)] * 3)
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_calibration_profile(calib_profile)
        calibrator = _calibrator(trt, calibration, batch)
        config.int8_calibrator = calibrator
    plan = builder.build_serialized_network(network, config)
    del calibrator  # needed only while building
    if plan is None:
        raise OptimizationError("tensorrt-build", f"{precision} build failed: {_errors(logger, mark)}")
    return bytes(plan)


def _write_atomically(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_engine(
    *,
    onnx_path: Path,
    precision: Precision,
    cache_dir: Path,
    calibration: np.ndarray | None,
    max_batch: int,
    opt_batch: int | None = None,
) -> EngineResult:
    """Blocking (a miss builds: seconds to minutes); idempotent per EngineKey (reuses `cache_dir/<key file>`); OptimizationError naming the stage on any failure."""
    trt = _tensorrt()
    if precision not in TOLERANCES:
        raise OptimizationError("tensorrt-build", f"unsupported precision {precision!r}; use fp16 or int8")
    if not onnx_path.is_file():
        raise OptimizationError("tensorrt-parse", f"{onnx_path} does not exist")
    if max_batch < 1:
        raise OptimizationError("tensorrt-build", f"max_batch must be >= 1, got {max_batch}")
    rows = None
    if precision == "int8":
        if calibration is None or calibration.ndim != 2 or len(calibration) == 0:
            raise OptimizationError(
                "tensorrt-calibrate", "int8 needs calibration rows [N, features]; got none"
            )
        rows = np.ascontiguousarray(calibration, dtype=np.float32)
    opt = min(max(1, opt_batch or max_batch), max_batch)
    key = EngineKey(
        onnx_sha256=file_sha256(onnx_path),
        tensorrt_version=str(trt.__version__),
        gpu_name=gpu_name(),
        precision=precision,
        max_batch=max_batch,
        opt_batch=opt,
        calibration_sha256=hashlib.sha256(rows.tobytes()).hexdigest() if rows is not None else "",
    )
    path = cache_dir / key.file_name()
    runtime = trt.Runtime(_logger())
    start = time.perf_counter()
    if path.is_file():
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is not None:
            return EngineResult(key, path, engine, time.perf_counter() - start, True, runtime)
        _log.warning("cached engine %s does not deserialize; rebuilding it", path)
    mark = len(_logger().errors)
    plan = _serialize(
        trt, onnx_path=onnx_path, precision=precision, calibration=rows, max_batch=max_batch, opt=opt
    )
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise OptimizationError(
            "tensorrt-build", f"the built plan does not deserialize: {_errors(_logger(), mark)}"
        )
    _write_atomically(path, plan)
    return EngineResult(key, path, engine, time.perf_counter() - start, False, runtime)


# --------------------------------------------------------------------------- running


class _Runner:
    """One execution context and CUDA stream over an engine; runs device-resident float32 batches."""

    def __init__(self, engine: Any) -> None:
        import torch

        trt = _tensorrt()
        self._context = engine.create_execution_context()
        if self._context is None:
            raise OptimizationError("tensorrt-run", "cannot create an execution context (out of GPU memory?)")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [INPUT_NAME]:
            raise OptimizationError("tensorrt-run", f"engine inputs are {inputs}; expected ['{INPUT_NAME}']")
        self._outputs = [n for n in names if n not in inputs]
        self._dtypes = {
            n: torch.from_numpy(np.empty(0, dtype=trt.nptype(engine.get_tensor_dtype(n)))).dtype
            for n in self._outputs
        }
        self.max_batch = int(engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0])
        self._stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        self._buffers: dict[tuple[int, ...], list[Any]] = {}

    def __call__(self, x: Any) -> Any:
        """Blocking; the first output (a reused CUDA buffer: copy it before the next call) for CUDA x [N, F]."""
        import torch

        shape = tuple(int(d) for d in x.shape)
        if not self._context.set_input_shape(INPUT_NAME, shape):
            raise OptimizationError("tensorrt-run", f"input shape {shape} is outside the engine's profile")
        if shape not in self._buffers:
            self._buffers[shape] = [
                torch.empty(
                    tuple(int(d) for d in self._context.get_tensor_shape(n)),
                    dtype=self._dtypes[n],
                    device="cuda",
                )
                for n in self._outputs
            ]
        outs = self._buffers[shape]
        self._context.set_tensor_address(INPUT_NAME, int(x.data_ptr()))
        for name, buf in zip(self._outputs, outs, strict=True):
            self._context.set_tensor_address(name, int(buf.data_ptr()))
        self._stream.wait_stream(torch.cuda.current_stream())
        if not self._context.execute_async_v3(self._stream.cuda_stream):
            raise OptimizationError("tensorrt-run", "execute_async_v3 returned False")
        self._stream.synchronize()
        return outs[0]


def run_engine(engine: Any, x: np.ndarray) -> np.ndarray:
    """Blocking; the engine's first output for host rows `x` (float32 [N, F]), in chunks within its profile."""
    import torch

    runner = _Runner(engine)
    rows = np.ascontiguousarray(x, dtype=np.float32)
    parts = []
    for start in range(0, len(rows), runner.max_batch):
        chunk = torch.from_numpy(rows[start : start + runner.max_batch]).to("cuda").contiguous()
        parts.append(runner(chunk).float().cpu().numpy())
    return np.concatenate(parts, axis=0)


def check_parity(
    engine_out: np.ndarray, ort_fp32_out: np.ndarray, *, atol: float, rtol: float
) -> ParityReport:
    """Pure; engine vs ORT FP32 (the reference) with numpy.isclose semantics; max abs/rel error, worst row; never raises."""
    return compare(ort_fp32_out, engine_out, atol=atol, rtol=rtol)


# --------------------------------------------------------------------------- timing


class LatencyRow(BaseModel):
    """p50/p99 of one batch size: TensorRT vs PyTorch eager (FP32) on the same GPU, device-resident inputs."""

    model_config = ConfigDict(frozen=True)
    batch: int
    samples: int = Field(description="Timed calls per contender (rounds x iterations).")
    trt_p50_ms: float
    trt_p99_ms: float
    torch_p50_ms: float
    torch_p99_ms: float
    speedup_p50: float = Field(description="torch p50 / TensorRT p50 (> 1: TensorRT is faster).")


def _time_calls(fn: Callable[[], Any], n: int) -> list[float]:
    import torch

    samples = []
    for _ in range(n):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def _time_batch(
    contenders: dict[str, Callable[[], Any]], *, warmup: int, rounds: int, iterations: int
) -> dict[str, list[float]]:
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for r in range(rounds):  # interleaved, alternating who goes first, so drift hits both alike
        for name in order if r % 2 == 0 else order[::-1]:
            samples[name] += _time_calls(contenders[name], iterations)
    return samples


def benchmark(
    *,
    engine: Any,
    module: Any,
    x: np.ndarray,
    batches: Sequence[int] = BENCH_BATCHES,
    warmup: int = 20,
    rounds: int = 5,
    iterations: int = 50,
) -> list[LatencyRow]:
    """Blocking; measured p50/p99 per batch (rows of `x` tiled) for TensorRT and a CUDA copy of `module`; never estimates."""
    import torch

    runner = _Runner(engine)
    eager = copy.deepcopy(module).to("cuda").eval()
    rows = []
    for batch in batches:
        if batch > runner.max_batch:
            raise OptimizationError(
                "tensorrt-bench", f"batch {batch} exceeds the engine's max {runner.max_batch}"
            )
        xb = torch.from_numpy(np.resize(np.asarray(x, dtype=np.float32), (batch, x.shape[1]))).to("cuda")
        with torch.inference_mode():
            samples = _time_batch(
                {"trt": partial(runner, xb), "torch": partial(eager, xb)},
                warmup=warmup,
                rounds=rounds,
                iterations=iterations,
            )
        trt_p50, trt_p99 = (float(v) for v in np.percentile(samples["trt"], [50, 99]))
        torch_p50, torch_p99 = (float(v) for v in np.percentile(samples["torch"], [50, 99]))
        rows.append(
            LatencyRow(
                batch=batch,
                samples=len(samples["trt"]),
                trt_p50_ms=trt_p50,
                trt_p99_ms=trt_p99,
                torch_p50_ms=torch_p50,
                torch_p99_ms=torch_p99,
                speedup_p50=torch_p50 / trt_p50,
            )
        )
    return rows


# --------------------------------------------------------------------------- report


class EngineReport(BaseModel):
    """One precision: which engine, what it cost, how close it is to ORT FP32, how fast it is."""

    model_config = ConfigDict(frozen=True)
    precision: str
    engine: str = Field(description="Cache file name (the EngineKey digest).")
    onnx_sha256: str
    build_s: float
    cache_hit: bool
    parity: ParityReport
    latency: list[LatencyRow] = Field(default_factory=list)


class TensorRTReport(BaseModel):
    """What the TensorRT stage did for one model version: built, skipped (and why) or failed (and why)."""

    model_config = ConfigDict(frozen=True)
    status: Status
    reason: str
    gpu: str | None = None
    tensorrt_version: str | None = None
    engines: list[EngineReport] = Field(default_factory=list)

    def as_tags(self) -> dict[str, str]:
        """Pure; `slipway.tensorrt.*` registry tags (string values, reason capped at 500 characters)."""
        tags = {f"{TAG}.status": self.status, f"{TAG}.reason": self.reason[:500]}
        if self.gpu:
            tags[f"{TAG}.gpu"] = self.gpu
        if self.tensorrt_version:
            tags[f"{TAG}.version"] = self.tensorrt_version
        for e in self.engines:
            p = f"{TAG}.{e.precision}"
            tags |= {
                f"{p}.engine": e.engine,
                f"{p}.build_s": f"{e.build_s:.2f}",
                f"{p}.cache_hit": str(e.cache_hit).lower(),
                f"{p}.parity": "passed" if e.parity.passed else "failed",
                f"{p}.max_abs_error": f"{e.parity.max_abs_error:.3g}",
                f"{p}.max_rel_error": f"{e.parity.max_rel_error:.3g}",
                f"{p}.label_agreement": f"{e.parity.label_agreement:.4f}",
            }
            for row in e.latency:
                b = f"{p}.batch{row.batch}"
                tags |= {
                    f"{b}.trt_p50_ms": f"{row.trt_p50_ms:.4f}",
                    f"{b}.trt_p99_ms": f"{row.trt_p99_ms:.4f}",
                    f"{b}.torch_p50_ms": f"{row.torch_p50_ms:.4f}",
                    f"{b}.speedup_p50": f"{row.speedup_p50:.2f}",
                }
        return tags

    def as_rows(self) -> list[dict[str, str | int | float | bool]]:
        """Pure; table-artifact rows, one per precision and batch (one status row when nothing was built); same keys in every row."""
        blank: dict[str, str | int | float | bool] = {
            "precision": "",
            "batch": "",
            "status": self.status,
            "engine": "",
            "cache_hit": "",
            "build_s": "",
            "parity": "",
            "max_abs_error": "",
            "max_rel_error": "",
            "trt_p50_ms": "",
            "trt_p99_ms": "",
            "torch_p50_ms": "",
            "torch_p99_ms": "",
            "speedup_p50": "",
            "note": self.reason,
        }
        if not self.engines:
            return [blank]
        rows = []
        for e in self.engines:
            base = blank | {
                "precision": e.precision,
                "engine": e.engine,
                "cache_hit": e.cache_hit,
                "build_s": round(e.build_s, 2),
                "parity": "passed" if e.parity.passed else "failed",
                "max_abs_error": float(f"{e.parity.max_abs_error:.3g}"),
                "max_rel_error": float(f"{e.parity.max_rel_error:.3g}"),
                "note": f"atol {e.parity.atol:g}, rtol {e.parity.rtol:g}, label agreement {e.parity.label_agreement:.2%}",
            }
            rows += [
                base
                | {
                    "batch": r.batch,
                    "trt_p50_ms": round(r.trt_p50_ms, 4),
                    "trt_p99_ms": round(r.trt_p99_ms, 4),
                    "torch_p50_ms": round(r.torch_p50_ms, 4),
                    "torch_p99_ms": round(r.torch_p99_ms, 4),
                    "speedup_p50": round(r.speedup_p50, 2),
                }
                for r in e.latency
            ] or [base]
        return rows


def skipped(reason: str) -> TensorRTReport:
    """Pure; the report of a release that ran no GPU stage; reason reads `tensorrt: skipped (<reason>)`."""
    return TensorRTReport(status="skipped", reason=f"tensorrt: skipped ({reason})")


def failed(
    reason: str, *, gpu: str | None = None, version: str | None = None, engines: Sequence[EngineReport] = ()
) -> TensorRTReport:
    """Pure; a failed stage's report: the cause and whatever was measured before it."""
    return TensorRTReport(
        status="failed",
        reason=f"tensorrt: failed ({reason})",
        gpu=gpu,
        tensorrt_version=version,
        engines=list(engines),
    )


def summarize(engines: Sequence[EngineReport], *, gpu: str, version: str) -> TensorRTReport:
    """Pure; built when every engine passed parity, else failed naming each miss."""
    misses = [
        f"{e.precision} parity: max abs error {e.parity.max_abs_error:.3g} (atol {e.parity.atol:g}, "
        f"rtol {e.parity.rtol:g}), worst row {e.parity.worst_row}"
        for e in engines
        if not e.parity.passed
    ]
    if misses:
        return failed("; ".join(misses), gpu=gpu, version=version, engines=engines)
    speed = [
        f"{e.precision} batch {r.batch}: {r.speedup_p50:.2f}x torch p50" for e in engines for r in e.latency
    ]
    detail = ", ".join(speed) or "no timings"
    return TensorRTReport(
        status="built",
        reason=f"tensorrt: built {', '.join(e.precision for e in engines)} on {gpu} ({detail})",
        gpu=gpu,
        tensorrt_version=version,
        engines=list(engines),
    )


def evaluate_precision(
    *,
    onnx_path: Path,
    precision: Precision,
    module: Any,
    x: np.ndarray,
    reference: np.ndarray,
    cache_dir: Path,
    calibration: np.ndarray | None = None,
    max_batch: int = MAX_BATCH,
    batches: Sequence[int] = BENCH_BATCHES,
) -> EngineReport:
    """Blocking; build (or reuse) one engine, parity on `x` vs `reference` (ORT FP32), then time it vs torch eager."""
    result = build_engine(
        onnx_path=onnx_path,
        precision=precision,
        cache_dir=cache_dir,
        calibration=calibration,
        max_batch=max_batch,
    )
    atol, rtol = TOLERANCES[precision]
    parity = check_parity(run_engine(result.engine, x), reference, atol=atol, rtol=rtol)
    return EngineReport(
        precision=precision,
        engine=result.path.name,
        onnx_sha256=result.key.onnx_sha256,
        build_s=result.build_s,
        cache_hit=result.cache_hit,
        parity=parity,
        latency=benchmark(engine=result.engine, module=module, x=x, batches=batches),
    )


def parse_precisions(values: Sequence[str]) -> list[Precision]:
    """Pure; the requested precisions, deduplicated in order; OptimizationError naming any unsupported one."""
    bad = [v for v in values if v not in TOLERANCES]
    if bad or not values:
        raise OptimizationError(
            "tensorrt", f"unsupported precision(s) {bad or values}; supported: fp16, int8"
        )
    return [cast(Precision, v) for v in dict.fromkeys(values)]
