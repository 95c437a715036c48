"""`make bench` for the optimization stage: ORT FP32 / INT8 / INT4 candidates against PyTorch eager, and
(section `frameworks`) ORT FP32 against native scikit-learn / LightGBM / XGBoost models.

One run, two models: the shipped example (the breast-cancer MLP, trained as a release trains it)
and a larger digits CNN, because the MLP is tiny. Both go through the release's own code paths:
`export_onnx`, the parity check, `build_candidates`, one interleaved `measure()` per thread count
and `select()`. Writes `optimize.json` (every number) and `optimize.md` (tables) to `out_dir`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from slipway.bench.markdown import render_markdown
from slipway.config import BenchConfig, OptimizeConfig, PipelineConfig, load_config
from slipway.evaluation.target import Target
from slipway.frameworks.pytorch import PyTorchAdapter
from slipway.optimize.candidates import Candidate, build_candidates
from slipway.optimize.export import export_onnx
from slipway.optimize.measure import Measurement, measure, ort_runner, torch_runner
from slipway.optimize.parity import check_parity
from slipway.optimize.select import BASELINE, select

SHIPPED_MODEL = "breast_cancer_mlp"
SECOND_MODEL = "digits_cnn"
TORCH = "torch_eager"
INT8 = "int8_dynamic"
INT8_STATIC = "int8_static_qdq"
BINARY = Target(task="binary", label="target", classes=(0, 1))
FP32_OVER_TORCH_TARGET = 0.67  # issue 3: ORT FP32 at most 0.67x PyTorch eager p50 at batch 1
EXTRA_THREADS = (2,)  # timed too in a full run when the machine has the cores; headline stays at 1
HEADLINE_KEYS = (
    "ort_fp32_over_torch_p50_b1",
    "ort_fp32_over_torch_p50_b32",
    "int8_over_fp32_p50_b1",
    "int8_static_over_fp32_p50_b1",
    "int8_accuracy_delta_points",
)


@dataclass(frozen=True)
class BenchModel:
    """A trained torch module and the rows it is judged on."""

    name: str
    description: str
    module: Any
    train_x: np.ndarray
    holdout_x: np.ndarray
    holdout_y: np.ndarray


def protocol(*, quick: bool) -> BenchConfig:
    """Pure; the timing protocol: 1 thread, batches 1 and 32; `quick` shrinks every count for tests."""
    if quick:
        return BenchConfig(threads=1, batches=[1, 32], warmup=2, rounds=2, iterations=5, load_repeats=1)
    return BenchConfig(threads=1, batches=[1, 32], warmup=100, rounds=11, iterations=200, load_repeats=5)


def shipped_mlp(*, config_path: Path) -> BenchModel:
    """Blocking (seconds); the example MLP trained with the repo config's `training` section on a 400-row batch."""
    from slipway.data.generate import make_batch
    from slipway.data.reference import load_reference
    from slipway.examples.breast_cancer import train
    from slipway.training.base import TrainingRequest

    cfg = load_config(config_path) if config_path.is_file() else PipelineConfig()
    ref = load_reference(cfg.data, base_dir=cfg.base_dir)
    frame = make_batch(ref, rows=400, seed=1)
    request = TrainingRequest(
        frame=frame,
        features=ref.features,
        label=ref.label,
        params=dict(cfg.training.params),
        seed=cfg.training.seed,
        target=ref.target,
    )
    x, y = ref.holdout_xy()
    return BenchModel(
        name=SHIPPED_MODEL,
        description="the shipped example: breast-cancer MLP (30 features, 2 classes)",
        module=train(request).module,
        train_x=frame.loc[:, list(ref.features)].to_numpy(dtype=np.float32),
        holdout_x=x,
        holdout_y=y,
    )


def digits_cnn(*, seed: int = 42) -> BenchModel:
    """Blocking (seconds); the digits CNN trained on a stratified 75% split, judged on the other 25%."""
    from slipway.evaluation.target import Target
    from slipway.examples import digits_cnn as dc
    from slipway.training.base import TrainingRequest

    train_frame, holdout = dc.split_digits(dc.load_digits_frame(), seed=0)
    target = Target(task="multiclass", label=dc.LABEL, classes=tuple(range(10)))
    request = TrainingRequest(
        frame=train_frame, features=dc.FEATURES, label=dc.LABEL, params={}, seed=seed, target=target
    )
    return BenchModel(
        name=SECOND_MODEL,
        description="a larger example: CNN on sklearn digits (64 pixels as 1x8x8, 10 classes)",
        module=dc.train(request).module,
        train_x=train_frame.loc[:, list(dc.FEATURES)].to_numpy(dtype=np.float32),
        holdout_x=holdout.loc[:, list(dc.FEATURES)].to_numpy(dtype=np.float32),
        holdout_y=holdout[dc.LABEL].to_numpy(dtype=np.int64),
    )


def _models(*, config_path: Path) -> Iterator[BenchModel]:
    """Train lazily, one model at a time."""
    yield shipped_mlp(config_path=config_path)
    yield digits_cnn()


def _p50_ratio(m: dict[str, Measurement], num: str, den: str, batch: int) -> float | None:
    if num not in m or den not in m or batch not in m[num].samples or batch not in m[den].samples:
        return None
    return m[num].p50(batch) / m[den].p50(batch)


def _delta_points(m: dict[str, Measurement], name: str) -> float | None:
    if name not in m or BASELINE not in m:
        return None
    return round((m[name].quality - m[BASELINE].quality) * 100.0, 4) + 0.0  # + 0.0: no -0.0


def ratios(m: dict[str, Measurement]) -> dict[str, float | None]:
    """Pure; p50 ratios (over every timed call) and INT8 accuracy deltas (points); None where a runner is missing."""
    return {
        "ort_fp32_over_torch_p50_b1": _p50_ratio(m, BASELINE, TORCH, 1),
        "ort_fp32_over_torch_p50_b32": _p50_ratio(m, BASELINE, TORCH, 32),
        "int8_over_fp32_p50_b1": _p50_ratio(m, INT8, BASELINE, 1),
        "int8_over_fp32_p50_b32": _p50_ratio(m, INT8, BASELINE, 32),
        "int8_static_over_fp32_p50_b1": _p50_ratio(m, INT8_STATIC, BASELINE, 1),
        "int8_static_over_fp32_p50_b32": _p50_ratio(m, INT8_STATIC, BASELINE, 32),
        "int8_accuracy_delta_points": _delta_points(m, INT8),
        "int8_static_accuracy_delta_points": _delta_points(m, INT8_STATIC),
    }


def _module_bytes(module: Any) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return int(sum(t.numel() * t.element_size() for t in tensors))


def timed_run(
    model: BenchModel, candidates: list[Candidate], *, cfg: OptimizeConfig, threads: int
) -> dict[str, Any]:
    """Blocking; ONE interleaved measure() over the built ORT candidates and torch eager, then select()."""
    runners = [
        ort_runner(c.name, c.path, threads=threads)
        for c in candidates
        if c.status == "built" and c.path is not None
    ]
    runners.append(torch_runner(TORCH, model.module, threads=threads, size_bytes=_module_bytes(model.module)))
    b = cfg.bench
    measurements = measure(
        runners,
        x=model.holdout_x,
        y=model.holdout_y,
        batches=b.batches,
        warmup=b.warmup,
        rounds=b.rounds,
        iterations=b.iterations,
        load_repeats=b.load_repeats,
    )
    selection = select(candidates, measurements, cfg=cfg, references=(TORCH,))
    built = {c.name: c for c in candidates}
    rows: dict[str, dict[str, Any]] = {}
    for row in selection.rows:
        doc = row.model_dump(mode="json")
        drop = row.quality_loss
        # the bench's models are classifiers: their quality metric is accuracy, its loss in points
        doc["accuracy"], doc["accuracy_delta_points"] = (
            row.quality,
            None if drop is None else round(-drop, 4) + 0.0,
        )
        if row.name in built:
            doc |= {"build_s": built[row.name].build_s, "reason": built[row.name].reason}
        rows[row.name] = doc
    return {
        "threads": threads,
        "shipped": selection.shipped,
        "rank_batch": selection.rank_batch,
        "reasons": selection.reasons,
        "ratios": ratios(measurements),
        "candidates": rows,
    }


def bench_model(
    model: BenchModel, *, cfg: OptimizeConfig, work_dir: Path, threads: list[int]
) -> dict[str, Any]:
    """Blocking; export, parity, candidates, then timed_run() per thread count; the model's JSON section."""
    start = time.perf_counter()
    exported = export_onnx(
        model.module, example=model.holdout_x, path=work_dir / "model.onnx", opset=cfg.opset
    )
    reference = PyTorchAdapter().raw_outputs(model.module, model.holdout_x, target=BINARY)  # target unread
    parity = check_parity(
        reference, exported.path, model.holdout_x, atol=cfg.parity.atol, rtol=cfg.parity.rtol
    )
    candidates = build_candidates(
        exported.path,
        work_dir / "candidates",
        names=list(cfg.candidates),
        calibration=model.train_x[: cfg.calibration_rows],
    )
    runs = [timed_run(model, candidates, cfg=cfg, threads=n) for n in threads]
    return {
        "description": model.description,
        "parameters": int(sum(p.numel() for p in model.module.parameters())),
        "train_rows": len(model.train_x),
        "holdout_rows": len(model.holdout_x),
        "export": {"opset": exported.opset, "size_bytes": exported.size_bytes, "sha256": exported.sha256},
        "parity": parity.model_dump(mode="json") | {"summary": parity.summary()},
        **runs[0],
        "more_threads": {str(run["threads"]): run for run in runs[1:]},
        "wall_s": round(time.perf_counter() - start, 1),
    }


def _cpuinfo() -> tuple[str, set[str]]:
    path = Path("/proc/cpuinfo")
    lines = path.read_text().splitlines() if path.is_file() else []
    fields = [line.split(":", 1) for line in lines if ":" in line]
    model = next((v.strip() for k, v in fields if k.strip() == "model name"), platform.processor())
    flags = next((v.split() for k, v in fields if k.strip() in ("flags", "Features")), [])
    return model or "unknown", set(flags)


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_facts() -> dict[str, Any]:
    """Blocking (reads /proc/cpuinfo); the CPU, its INT8 dot-product (VNNI/AMX) flags, cores and versions."""
    import onnx
    import onnxruntime
    import torch

    model, flags = _cpuinfo()
    return {
        "cpu": model,
        "avx512_vnni": "avx512_vnni" in flags,
        "avx_vnni": "avx_vnni" in flags,
        "amx_int8": "amx_int8" in flags,
        "cores": _usable_cores(),
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def targets(head: dict[str, float | None], *, cfg: OptimizeConfig) -> dict[str, dict[str, Any]]:
    """Pure; each headline target with its limit and whether the shipped model met it."""
    fp32 = head["ort_fp32_over_torch_p50_b1"]
    delta = head["int8_accuracy_delta_points"]
    budget = cfg.max_accuracy_drop_points
    return {
        "ort_fp32_over_torch_p50_b1": {
            "target": f"<= {FP32_OVER_TORCH_TARGET:g}",
            "met": fp32 is not None and fp32 <= FP32_OVER_TORCH_TARGET,
        },
        "int8_accuracy_delta_points": {
            "target": f">= -{budget:g} (selection budget)",
            "met": delta is not None and delta >= -budget,
        },
    }


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: non-finite floats become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def run(out_dir: Path, *, quick: bool = False, config_path: Path = Path("slipway.yaml")) -> dict[str, Any]:
    """Blocking (~1-2 min; quick: seconds); benches both models, writes optimize.json/.md to out_dir, returns the JSON."""
    import torch

    started = time.perf_counter()
    cfg = OptimizeConfig(bench=protocol(quick=quick))
    extra = [] if quick else [n for n in EXTRA_THREADS if n <= _usable_cores()]
    threads = [cfg.bench.threads, *extra]
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # training too: tiny models train slower with threads fighting
    try:
        models: dict[str, Any] = {}
        for model in _models(config_path=config_path):
            models[model.name] = bench_model(
                model, cfg=cfg, work_dir=out_dir / "onnx" / model.name, threads=threads
            )
        from slipway.bench.frameworks import bench_frameworks
        from slipway.data.reference import load_reference

        frameworks = bench_frameworks(
            load_reference(PipelineConfig().data), cfg=cfg, work_dir=out_dir / "onnx" / "frameworks"
        )
    finally:
        torch.set_num_threads(before)
    head = models[SHIPPED_MODEL]["ratios"]
    doc: dict[str, Any] = _finite(
        {
            "shipped_model": SHIPPED_MODEL,
            **{key: head[key] for key in HEADLINE_KEYS},
            "shipped": models[SHIPPED_MODEL]["shipped"],
            "targets": targets(head, cfg=cfg),
            "quick": quick,
            "protocol": cfg.bench.model_dump(mode="json")
            | {"threads": threads, "ratio": "p50 over every timed call"},
            "selection_rules": {
                "max_accuracy_drop_points": cfg.max_accuracy_drop_points,
                "min_quantized_speedup": cfg.min_quantized_speedup,
                "rank_batch": cfg.rank_batch,
            },
            "machine": machine_facts(),
            "models": models,
            "frameworks": frameworks,
            "wall_s": round(time.perf_counter() - started, 1),
        }
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "optimize.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    (out_dir / "optimize.md").write_text(render_markdown(doc))
    return doc
