"""Timing protocol shared by the release stage and `make bench`.

Threads pinned, warm-up first, then interleaved A/B rounds (the order shuffles every round) so
that drift of a noisy machine hits every runner alike; latencies are per call, in milliseconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slipway.evaluation.scoring import eval_mode
from slipway.optimize.export import INPUT_NAME
from slipway.optimize.runtime import open_session

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Runner:
    """Something to time: how to load it (timed) and the predict function it yields."""

    name: str
    load: Callable[[], Predict]
    size_bytes: int | None = None


@dataclass
class Measurement:
    """Every number of one runner."""

    name: str
    size_bytes: int | None
    load_ms: float
    quality: float  # the task's primary metric on the holdout (accuracy, or rmse for regression)
    outputs: np.ndarray
    # batch -> every timed call (ms), and batch -> per-round medians (ms)
    samples: dict[int, list[float]] = field(default_factory=dict)
    round_p50: dict[int, list[float]] = field(default_factory=dict)

    def p50(self, batch: int) -> float:
        """Median latency (ms) over every timed call at `batch`."""
        return float(np.percentile(self.samples[batch], 50))

    def p99(self, batch: int) -> float:
        """99th percentile latency (ms) at `batch`."""
        return float(np.percentile(self.samples[batch], 99))


def ort_runner(name: str, path: Path, *, threads: int) -> Runner:
    """A runner over an ONNX file on ORT CPU with pinned threads."""

    def load() -> Predict:
        session = open_session(path, threads=threads)

        def predict(x: np.ndarray) -> np.ndarray:
            return np.asarray(session.run(None, {INPUT_NAME: x})[0])

        return predict

    return Runner(name=name, load=load, size_bytes=path.stat().st_size)


def torch_runner(name: str, module: Any, *, threads: int, size_bytes: int | None = None) -> Runner:
    """A runner over a torch module in eval mode (eager, no grad, `threads` intra-op threads)."""
    import torch

    def load() -> Predict:
        torch.set_num_threads(threads)
        eval_mode(module)

        def predict(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return np.asarray(module(torch.from_numpy(x)).numpy())

        return predict

    return Runner(name=name, load=load, size_bytes=size_bytes)


def _batches(x: np.ndarray, batch: int, count: int) -> list[np.ndarray]:
    """`count` contiguous float32 batches cycling over the rows of x."""
    rows = np.ascontiguousarray(x, dtype=np.float32)
    out = []
    for i in range(count):
        idx = (np.arange(batch) + i * batch) % len(rows)
        out.append(np.ascontiguousarray(rows[idx]))
    return out


def measure(
    runners: list[Runner],
    *,
    x: np.ndarray,
    y: np.ndarray,
    batches: list[int],
    warmup: int,
    rounds: int,
    iterations: int,
    load_repeats: int,
    seed: int = 0,
    quality: Callable[[np.ndarray], float] | None = None,
) -> dict[str, Measurement]:
    """Blocking (seconds); loads, scores and times every runner under one interleaved protocol.

    `quality(outputs)` scores a runner's raw outputs on `x` (default: argmax accuracy against `y`).
    """
    predicts: dict[str, Predict] = {}
    result: dict[str, Measurement] = {}
    for runner in runners:
        loads = []
        for _ in range(load_repeats):
            start = time.perf_counter()
            predict = runner.load()
            loads.append((time.perf_counter() - start) * 1e3)
        predicts[runner.name] = predict
        outputs = predict(np.ascontiguousarray(x, dtype=np.float32))
        result[runner.name] = Measurement(
            name=runner.name,
            size_bytes=runner.size_bytes,
            load_ms=statistics.median(loads),
            quality=quality(outputs) if quality is not None else float(np.mean(outputs.argmax(axis=1) == y)),
            outputs=outputs,
        )
    inputs = {b: _batches(x, b, iterations) for b in batches}
    for name, predict in predicts.items():
        for b in batches:
            for i in range(warmup):
                predict(inputs[b][i % len(inputs[b])])
            result[name].samples[b] = []
            result[name].round_p50[b] = []
    rng = np.random.default_rng(seed)
    names = list(predicts)
    for _ in range(rounds):
        for idx in rng.permutation(len(names)):
            name = names[int(idx)]
            predict = predicts[name]
            for b in batches:
                times = []
                for xb in inputs[b]:
                    start = time.perf_counter_ns()
                    predict(xb)
                    times.append((time.perf_counter_ns() - start) / 1e6)
                result[name].samples[b].extend(times)
                result[name].round_p50[b].append(statistics.median(times))
    return result
