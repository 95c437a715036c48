"""Prometheus metrics of one app, in its own registry (so tests can build many apps)."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

# Canary analysis on Kubernetes rebuilds latency and score samples from these buckets
# (slipway.deploy.k8s_metrics), so they are fine: latency edges 2**(k/4) s from 2**-13 s (0.12 ms) to
# 2**4 s (each 19% above the last: a p99 ratio read off them is off by at most that factor), and score
# edges every 0.02 (0.5 is an edge, so labels survive) plus finer ones near 0 and 1 where a
# classifier's scores pile up. Above 1.0 (the +Inf bucket) a score breaks the schema.
LATENCY_BUCKETS = tuple(float(f"{2.0 ** (k / 4):.6g}") for k in range(-52, 17))
SCORE_BUCKETS = tuple(
    sorted({0.001, 0.005, 0.01, 0.99, 0.995, 0.999} | {round(0.02 * k, 2) for k in range(1, 51)})
)


class ServingMetrics:
    """Request counts by status, latency, prediction scores and classes, non-finite outputs; by model version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        self.score = Histogram(
            "slipway_prediction_score",
            "Predicted probability of class 1 (the positive class), per instance.",
            ["model_version"],
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
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

        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (str(id(metric)), *labels)  # labels() costs a lock and a lookup: cache the children
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(self, *, status: int, version: str, seconds: float) -> None:
        """Non-blocking; counts one /predict request and its latency."""
        self._child(self.requests, str(status), version).inc()
        self._child(self.latency, version).observe(seconds)

    def outputs(self, *, version: str, labels: list[int | None], scores: np.ndarray) -> None:
        """Non-blocking; counts predicted classes, observes finite scores, counts non-finite rows (label None)."""
        counts: dict[int, int] = {}
        nonfinite = 0
        for label in labels:
            if label is None:
                nonfinite += 1
            else:
                counts[label] = counts.get(label, 0) + 1
        for label, n in counts.items():
            self._child(self.predictions, version, str(label)).inc(n)
        if nonfinite:
            self._child(self.nonfinite, version).inc(nonfinite)
        score = self._child(self.score, version)
        for value in scores[np.isfinite(scores)].tolist():
            score.observe(value)

    def exposition(self) -> bytes:
        """Non-blocking; the text exposition format of this registry."""
        return generate_latest(self.registry)
