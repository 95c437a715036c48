"""Prometheus metrics of one app, in its own registry (so tests can build many apps).

With several workers (`PROMETHEUS_MULTIPROC_DIR` set before `prometheus_client` is imported, which
`slipway.serving.server` does for its workers) every value lives in that directory's per-process files
and `exposition()` sums all of them, so whichever worker answers a scrape reports the server's totals.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Canary analysis on Kubernetes rebuilds latency and score samples from these buckets
# (slipway.deploy.k8s_metrics), so they are fine: latency edges 2**(k/4) s from 2**-13 s (0.12 ms) to
# 2**4 s (each 19% above the last: a p99 ratio read off them is off by at most that factor), and score
# edges every 0.02 (0.5 is an edge, so labels survive) plus finer ones near 0 and 1 where a
# classifier's scores pile up. Above 1.0 (the +Inf bucket) a score breaks the schema.
LATENCY_BUCKETS = tuple(float(f"{2.0 ** (k / 4):.6g}") for k in range(-52, 17))
SCORE_BUCKETS = tuple(
    sorted({0.001, 0.005, 0.01, 0.99, 0.995, 0.999} | {round(0.02 * k, 2) for k in range(1, 51)})
)


def value_buckets(value_range: tuple[float, float]) -> tuple[float, ...]:
    """Pure; a regression's value histogram edges: 50 across the reference label range, 10 on each side out to
    one span beyond it (the canary's validity range), so a shift or a mirror inside the range is visible."""
    lo, hi = value_range
    span = (hi - lo) or max(abs(lo), 1.0)
    inner = [lo + span * k / 50 for k in range(51)]
    outer = [lo - span * k / 10 for k in range(1, 11)] + [hi + span * k / 10 for k in range(1, 11)]
    return tuple(sorted({float(f"{v:.6g}") for v in inner + outer}))


def multiprocess_dir() -> str | None:
    """The Prometheus multiprocess directory of this process (None: single-process metrics)."""
    return os.environ.get(MULTIPROC_ENV) or None


class _FastHistogram:
    """One labelled histogram child observed by binary search (prometheus_client scans its edges in Python)."""

    __slots__ = ("_bounds", "_buckets", "_sum")

    def __init__(self, child: Any) -> None:
        # the child's own edges (+Inf last) and values: the same series observe() would update, found in
        # O(log n) instead of a loop over up to 69 edges, which cost more than the rest of a small request
        self._bounds: list[float] = child._upper_bounds
        self._buckets: list[Any] = child._buckets
        self._sum: Any = child._sum

    def observe(self, value: float) -> None:
        """Non-blocking; counts one finite observation exactly as `Histogram.observe` does."""
        self._buckets[bisect_left(self._bounds, value)].inc(1)
        self._sum.inc(value)


class ServingMetrics:
    """/predict counts by status, latency, admission (admitted, shed, deadline, queue depth), scores, classes,
    and for a model with a feature service the entities looked up, missing, and the lookup time.

    Every series carries the model version.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_dir() is not None
        self.requests = Counter(
            "slipway_requests_total",
            "/predict requests by HTTP status and model version.",
            ["status", "model_version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "slipway_request_latency_seconds",
            "/predict latency from request to response, seconds.",
            ["model_version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.score = self._score_histogram(SCORE_BUCKETS)
        self.predictions = Counter(
            "slipway_predictions_total",
            "Predicted instances by class label.",
            ["model_version", "class"],
            registry=self.registry,
        )
        self.nonfinite = Counter(
            "slipway_nonfinite_outputs_total",
            "Instances whose model output was NaN or infinite.",
            ["model_version"],
            registry=self.registry,
        )
        self.admitted = Counter(
            "slipway_admitted_total",
            "/predict requests that got a compute slot before their deadline.",
            ["model_version"],
            registry=self.registry,
        )
        self.shed = Counter(
            "slipway_shed_total",
            "/predict requests answered 503 at once because the in-flight and queue limits were full.",
            ["model_version"],
            registry=self.registry,
        )
        self.deadline_expired = Counter(
            "slipway_deadline_expired_total",
            "/predict requests answered 503 without computing them: their deadline passed while they waited.",
            ["model_version"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "slipway_queue_depth",
            "/predict requests waiting for a compute slot (summed over live workers).",
            ["model_version"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.entity_lookups = Counter(
            "slipway_entity_lookups_total",
            "/predict entities looked up in the online feature store (a model with a feature service).",
            ["model_version"],
            registry=self.registry,
        )
        self.missing_entities = Counter(
            "slipway_missing_entities_total",
            "Of the entities looked up, those the online store lacked (answered 404 in their row's place).",
            ["model_version"],
            registry=self.registry,
        )
        self.lookup_latency = Histogram(
            "slipway_entity_lookup_seconds",
            "One /predict request's online feature lookup (every entity in one read), seconds.",
            ["model_version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "slipway_connections_refused_total",
            "Connections answered 503 and closed at the connection cap.",
            registry=self.registry,
        )
        self.read_timeouts = Counter(
            "slipway_read_timeouts_total",
            "Connections closed because a request's headers or body, or the next request, came too slowly.",
            ["phase"],
            registry=self.registry,
        )
        self._children: dict[tuple[int | str, ...], Any] = {}
        self._values: dict[tuple[int | str, ...], Any] = {}
        self._fast: dict[tuple[int | str, ...], _FastHistogram] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key: tuple[int | str, ...] = (id(metric), *labels)  # labels() costs a lock and a lookup: cache them
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _count(self, metric: Any, *labels: str) -> Any:
        """The value object of a labelled counter child: `inc(n)` on it is what `Counter.inc` does after its checks."""
        key: tuple[int | str, ...] = (id(metric), *labels)
        value = self._values.get(key)
        if value is None:
            value = self._values[key] = self._child(metric, *labels)._value
        return value

    def _histogram(self, metric: Any, version: str) -> _FastHistogram:
        key = (id(metric), version)
        fast = self._fast.get(key)
        if fast is None:
            fast = self._fast[key] = _FastHistogram(metric.labels(version))
        return fast

    def request(self, *, status: int, version: str, seconds: float) -> None:
        """Non-blocking; counts one /predict request and its latency."""
        self._count(self.requests, str(status), version).inc(1)
        self._histogram(self.latency, version).observe(seconds)

    def entities(self, *, version: str, looked_up: int, missing: int, seconds: float) -> None:
        """Non-blocking; counts one request's entity lookups and missing entities, observes the lookup's time."""
        self._count(self.entity_lookups, version).inc(looked_up)
        if missing:
            self._count(self.missing_entities, version).inc(missing)
        self._histogram(self.lookup_latency, version).observe(seconds)

    def admission(self, *, outcome: str, version: str) -> None:
        """Non-blocking; counts one admission outcome: `admitted`, `shed` or `deadline`."""
        metric = {"admitted": self.admitted, "shed": self.shed, "deadline": self.deadline_expired}[outcome]
        self._count(metric, version).inc(1)

    def track_queue(self, *, version: str, depth: Callable[[], int]) -> None:
        """Non-blocking; the queue-depth gauge reads `depth()` at each scrape (single process) or now."""
        child = self._child(self.queue_depth, version)
        if self.multiprocess:
            child.set(depth())  # values live in files: the service samples it (sample_queue)
        else:
            child.set_function(depth)

    def sample_queue(self, *, version: str, depth: int) -> None:
        """Non-blocking; writes the queue depth now (multiprocess mode samples it periodically)."""
        self._child(self.queue_depth, version).set(depth)

    def _score_histogram(self, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(
            "slipway_prediction_score",
            "Per answered instance of a classifier: P(positive class) for a binary model, the top class's "
            "probability for a multiclass one (slipway.serving.answers).",
            ["model_version"],
            buckets=buckets,
            registry=self.registry,
        )

    def score_values(self, value_range: tuple[float, float]) -> None:
        """Non-blocking; once, before any output: a regression's values go to `slipway_prediction_value`
        (edges `value_buckets`: its lowest bucket and +Inf lie outside the canary's validity range)."""
        self.registry.unregister(self.score)
        self.score = Histogram(  # caches key on the metric's id: no reuse
            "slipway_prediction_value",
            "Per answered instance of a regression: the predicted value.",
            ["model_version"],
            buckets=value_buckets(value_range),
            registry=self.registry,
        )

    def outputs(self, *, version: str, labels: list[int | None], scores: Iterable[float]) -> None:
        """Non-blocking; counts predicted classes, observes the finite scores, counts non-finite rows (label None)."""
        counts: dict[int, int] = {}
        nonfinite = 0
        for label in labels:
            if label is None:
                nonfinite += 1
            else:
                counts[label] = counts.get(label, 0) + 1
        for label, n in counts.items():
            self._count(self.predictions, version, str(label)).inc(n)
        if nonfinite:
            self._count(self.nonfinite, version).inc(nonfinite)
        score = self._histogram(self.score, version)
        for value in scores:
            if math.isfinite(value):
                score.observe(value)

    def connection_refused(self) -> None:
        """Non-blocking; counts one connection refused at the cap."""
        self.connections_refused.inc()

    def read_timeout(self, *, phase: str) -> None:
        """Non-blocking; counts one connection closed for slowness: `idle`, `headers` or `body`."""
        self._child(self.read_timeouts, phase).inc()

    def exposition(self) -> bytes:
        """Blocking (reads the multiprocess files when there are several workers); the text exposition format."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def process_exited(self) -> None:
        """Idempotent; in multiprocess mode drops this process's live gauges (its queue is gone)."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
