"""What the server does, without HTTP: load and warm the model, gate readiness, run and post-process calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slipway.errors import UsageError
from slipway.serving.admission import Admission
from slipway.serving.answers import NO_LABEL, row_scores
from slipway.serving.batcher import MicroBatcher
from slipway.serving.bundle import BundleMeta, read_bundle
from slipway.serving.faults import FaultInjector
from slipway.serving.features import EntityLookup, StoreFactory, open_feast_store, open_lookup
from slipway.serving.metrics import ServingMetrics
from slipway.serving.model import ModelRuntime, answers, load_runtime
from slipway.serving.predlog import PredictionLog, prediction_log
from slipway.serving.settings import ServeSettings

log = logging.getLogger("slipway.serving")

WARMUP_ROWS = 32
QUEUE_SAMPLE_S = 0.5  # how often a worker writes its queue depth in multiprocess mode


def load_model(settings: ServeSettings) -> ModelRuntime:
    """Blocking; reads and verifies the bundle named by `settings.model`, opens its session; UsageError if absent or bad."""
    if settings.model is None:
        raise UsageError("no model: pass --model PATH or set SLIPWAY_SERVE_MODEL")
    return load_runtime(read_bundle(settings.model), threads=settings.ort_threads)


def inline_rows(call_ms: Sequence[float], *, inline_max_ms: float) -> int:
    """Pure; WARMUP_ROWS when the fastest timed WARMUP_ROWS-row call took less than `inline_max_ms`, else 0.

    The fastest call is the model's own cost: a busy machine only adds time, so two servers of the same
    model decide alike whatever the load while they warmed up (a median made a canary started on a loaded
    machine take the slower thread path for its whole life)."""
    return WARMUP_ROWS if call_ms and min(call_ms) < inline_max_ms else 0


@dataclass(frozen=True)
class Outputs:
    """One request's answer per task, and what the metrics and the canary read of it.

    Classification: `predictions` are class labels (None where the output was not finite) and
    `probabilities` one dict per row keyed by class (in class order). Regression: `predictions` are
    values (None where not finite). `indices` (predicted class index per row, None where not finite)
    and `scores` (finite rows only: binary P(positive), multiclass the top probability, regression
    the value) feed the metrics (`slipway.serving.answers` summarizes rows the same way).
    """

    predictions: list[Any]
    probabilities: list[dict[str, float | None]] | None
    indices: list[int | None]
    scores: list[float]

    def as_dict(self) -> dict[str, Any]:
        """Pure; the `predictions` part of a response: one object per row, `{"label", "probabilities"}` keyed
        by class name for a classifier, `{"value"}` for a regressor (None where not finite)."""
        if self.probabilities is None:
            return {"predictions": [{"value": v} for v in self.predictions]}
        return {
            "predictions": [
                {"label": label, "probabilities": probs}
                for label, probs in zip(self.predictions, self.probabilities, strict=True)
            ]
        }


SMALL_BATCH = 8  # up to this many rows, softmax in plain Python beats numpy's per-call overhead


def _small_softmax(rows: list[list[float]], *, meta: BundleMeta, keys: list[str]) -> Outputs | None:
    """Pure; `postprocess` of a few finite logit rows in plain Python floats (float64, as numpy); None if any is not finite."""
    predictions: list[Any] = []
    probabilities: list[dict[str, float | None]] = []
    indices: list[int | None] = []
    scores: list[float] = []
    binary = len(meta.classes) == 2
    for row in rows:
        top = max(row)
        if not math.isfinite(top - min(row)):
            return None
        exps = [math.exp(v - top) for v in row]
        total = sum(exps)
        probs = [e / total for e in exps]
        k = row.index(top)
        predictions.append(meta.classes[k])
        probabilities.append(dict(zip(keys, probs, strict=True)))
        indices.append(k)
        scores.append(probs[1] if binary else probs[k])
    return Outputs(predictions=predictions, probabilities=probabilities, indices=indices, scores=scores)


def postprocess(raw: np.ndarray, *, meta: BundleMeta) -> Outputs:
    """Pure; the model's raw outputs as the server answers them (softmax for logits, argmax to class labels;
    values for a regression), with what the metrics count."""
    if meta.task == "regression":
        values = raw.astype(np.float64).tolist()
        finite = [v if math.isfinite(v) else None for v in values]
        return Outputs(
            predictions=finite,
            probabilities=None,
            indices=[None] * len(values),
            scores=[v for v in finite if v is not None],
        )
    keys = [str(c) for c in meta.classes]
    if meta.output == "logits" and len(raw) <= SMALL_BATCH:
        small = _small_softmax(raw.tolist(), meta=meta, keys=keys)
        if small is not None:
            return small
    probs = answers(meta, raw)
    scores, labels = row_scores(meta.task, probs)
    finite = labels != NO_LABEL
    rows = probs.tolist()
    if finite.all():
        predictions: list[Any] = [meta.classes[k] for k in labels.tolist()]
        probabilities: list[dict[str, float | None]] = [dict(zip(keys, row, strict=True)) for row in rows]
        indices: list[int | None] = labels.tolist()
    else:
        predictions = [meta.classes[k] if k != NO_LABEL else None for k in labels.tolist()]
        probabilities = [
            {key: (v if math.isfinite(v) else None) for key, v in zip(keys, row, strict=True)} for row in rows
        ]
        indices = [k if k != NO_LABEL else None for k in labels.tolist()]
    return Outputs(
        predictions=predictions,
        probabilities=probabilities,
        indices=indices,
        scores=scores[finite & np.isfinite(scores)].tolist(),
    )


class ServingService:
    """The model, its readiness, admission control, and the optional batcher, prediction log and feature lookup
    (a bundle with a feature service: `store_factory` opens it, Feast by default) of one app."""

    def __init__(
        self,
        settings: ServeSettings,
        *,
        runtime: ModelRuntime | None = None,
        store_factory: StoreFactory = open_feast_store,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.store_factory = store_factory
        self.lookup: EntityLookup | None = None  # set once the bundle's feature service is open and matches
        self.metrics = ServingMetrics()
        self.admission = Admission(
            max_inflight=settings.max_inflight,
            max_queue=settings.max_queue,
            deadline_s=settings.deadline_ms / 1000.0,
        )
        self.faults = FaultInjector(settings)
        self.ready = False
        self.not_ready_reason = "loading the model"
        self.batcher: MicroBatcher | None = None
        self.predlog: PredictionLog | None = None
        self._ready_task: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self.inline_rows = 0  # calls with at most this many rows run on the event loop (set at warm-up)
        self._lease_until: float | None = (
            None  # set when it turns ready (a slow start must not eat its lease)
        )

    def renew_lease(self, ttl_s: float) -> float | None:
        """Non-blocking; the traffic lease runs until now + ttl_s; the seconds left, None when this server has no lease."""
        if self.settings.lease_s is None:
            return None
        self._lease_until = time.monotonic() + ttl_s
        return ttl_s

    def lease_lapsed(self) -> str | None:
        """Non-blocking; why the server must leave the Service (its traffic lease ran out), else None."""
        if self._lease_until is None:
            return None
        late = time.monotonic() - self._lease_until
        if late < 0:
            return None
        return f"the canary's traffic lease ran out {late:.0f} s ago: its release stopped renewing it"

    @property
    def version(self) -> str:
        """The served model version ('' before loading)."""
        return self.runtime.bundle.meta.model_version if self.runtime else ""

    async def start(self) -> None:
        """Loads (off the loop) and warms the model while it opens the bundle's feature service (off the loop),
        starts batcher and log, schedules readiness; raises on a bad model. A feature service that cannot be
        opened or changed since training keeps the server not Ready (rechecked every `feature_recheck_s`)."""
        if self.runtime is None:
            self.runtime = await asyncio.to_thread(load_model, self.settings)
        runtime = self.runtime
        s = self.settings
        self.not_ready_reason = "warming up"
        opening = (
            asyncio.get_running_loop().create_task(asyncio.to_thread(self._open_features))
            if runtime.bundle.meta.feature_service is not None
            else None
        )
        for rows in sorted({1, min(WARMUP_ROWS, s.max_batch_size)}):
            await asyncio.to_thread(runtime.run, np.zeros((rows, runtime.n_features), dtype=np.float32))
        self.inline_rows = await asyncio.to_thread(self._inline_rows, runtime)
        if s.microbatch:
            self.batcher = MicroBatcher(
                runtime.run, max_batch=s.microbatch_max_batch, max_wait_s=s.microbatch_max_wait_ms / 1000.0
            )
            self.batcher.start()
        self.predlog = prediction_log(s)
        if self.predlog is not None:
            await asyncio.to_thread(self.predlog.start)
        meta = runtime.bundle.meta
        if meta.task == "regression":
            self.metrics.score_values(meta.value_range or (0.0, 1.0))
        self.metrics.track_queue(version=meta.model_version, depth=lambda: self.admission.waiting)
        if self.metrics.multiprocess:
            self._sampler = asyncio.get_running_loop().create_task(self._sample_queue(meta.model_version))
        log.info(
            "model %s version %s loaded and warmed (%s)",
            meta.model_name,
            meta.model_version,
            runtime.bundle.onnx_path,
        )
        if s.faults_on():
            log.warning("FAULT INJECTION ON: %s", ", ".join(s.faults_on()))
        problem = await opening if opening is not None else None
        if self.lookup is not None:  # timed now, alone: during the warm-up the GIL was shared
            await asyncio.to_thread(self._calibrate_lookup)
        if problem is not None:
            log.warning("not ready: %s", problem)
            self.not_ready_reason = problem
            self._ready_task = asyncio.get_running_loop().create_task(self._await_features())
        else:
            self._become_ready()

    def _open_features(self) -> str | None:
        """Blocking (imports Feast the first time); opens the bundle's feature service into `lookup`; why the
        server must not be Ready, or None."""
        assert self.runtime is not None
        meta = self.runtime.bundle.meta.feature_service
        assert meta is not None
        lookup, problem = open_lookup(meta, factory=self.store_factory)
        if lookup is not None:
            self.lookup = lookup
        return problem

    def _calibrate_lookup(self) -> None:
        """Blocking (a few ms of reads); where lookups run, logged with how they read."""
        lookup = self.lookup
        assert lookup is not None
        lookup.calibrate(inline_max_ms=self.settings.feature_inline_max_ms)
        log.info(
            "feature service %s (%s) open; lookups by %s: %s",
            lookup.meta.name,
            lookup.meta.service_hash[:12],
            lookup.how,
            lookup.where(),
        )

    async def _await_features(self) -> None:
        """Until the feature service opens and matches: recheck it every `feature_recheck_s`, then turn ready."""
        while True:
            await asyncio.sleep(self.settings.feature_recheck_s)
            problem = await asyncio.to_thread(self._open_features)
            if problem is None:
                await asyncio.to_thread(self._calibrate_lookup)
                self._become_ready()
                return
            if problem != self.not_ready_reason:
                log.warning("not ready: %s", problem)
            self.not_ready_reason = problem

    def _become_ready(self) -> None:
        """Ready now, or as the fault knobs say (never, or after a slow start)."""
        s = self.settings
        if s.fault_never_ready:
            self.not_ready_reason = "fault injection: never ready"
        elif s.fault_slow_start_s > 0:
            self.not_ready_reason = f"fault injection: slow start ({s.fault_slow_start_s:g} s)"
            self._ready_task = asyncio.get_running_loop().create_task(self._ready_after(s.fault_slow_start_s))
        else:
            self._set_ready()

    def _inline_rows(self, runtime: ModelRuntime) -> int:
        """Blocking (20 timed calls); `inline_rows` of the warmed model's WARMUP_ROWS-row call times."""
        if self.settings.inline_max_ms <= 0:
            return 0
        x = np.zeros((WARMUP_ROWS, runtime.n_features), dtype=np.float32)
        times_ms = []
        for _ in range(20):
            start = time.perf_counter()
            runtime.run(x)
            times_ms.append((time.perf_counter() - start) * 1000)
        return inline_rows(times_ms, inline_max_ms=self.settings.inline_max_ms)

    async def _sample_queue(self, version: str) -> None:
        while True:
            self.metrics.sample_queue(version=version, depth=self.admission.waiting)
            await asyncio.sleep(QUEUE_SAMPLE_S)

    def _set_ready(self) -> None:
        self.ready, self.not_ready_reason = True, ""
        if self.settings.lease_s is not None and self._lease_until is None:  # its lease runs from here
            self._lease_until = time.monotonic() + self.settings.lease_s

    async def _ready_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._set_ready()

    async def stop(self) -> None:
        """Idempotent; not ready any more, then stops the batcher (failing queued calls) and flushes the log."""
        self.ready, self.not_ready_reason = False, "shutting down"
        for task in (self._ready_task, self._sampler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._ready_task = self._sampler = None
        self.metrics.process_exited()
        if self.batcher is not None:
            await self.batcher.stop()
        if self.predlog is not None:
            await asyncio.to_thread(self.predlog.stop)
        if self.lookup is not None:
            await self.lookup.aclose()

    async def infer(self, x: np.ndarray, *, deadline: float = math.inf) -> np.ndarray:
        """Logits for x (inline for a tiny model, else off the loop or micro-batched), fault-corrupted when asked.

        DeadlineExpired when micro-batching drops it uncomputed past `deadline` (time.monotonic).
        """
        if self.runtime is None:
            raise RuntimeError("the model is not loaded")
        if self.batcher is not None:
            logits = await self.batcher.submit(x, deadline=deadline)
        elif len(x) <= self.inline_rows:  # a tiny model: cheaper than the hop to a worker thread
            logits = self.runtime.run(x)
        else:
            logits = await asyncio.get_running_loop().run_in_executor(None, self.runtime.run, x)
        return self.faults.corrupt(logits, meta=self.runtime.bundle.meta)
